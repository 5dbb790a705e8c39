//! `virt-pci`: the command line. Everything is in `src/cli/` (arguments and
//! printing) and the library (decisions); see ARCHITECTURE.md.

#[path = "cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::app::main()
}
