//! `virt-pci`: the command line. Everything is in `src/cli/` (arguments and
//! printing) and the library (decisions); see ARCHITECTURE.md.

// Nothing outside this binary uses `cli`, so its items say who inside does:
// private (this file), `pub(super)` (other `cli/` files), `pub(crate)` (the
// binaries' `main`). A bare `pub` would say nothing; this lint refuses it.
#![warn(unreachable_pub)]

#[path = "cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::app::main()
}
