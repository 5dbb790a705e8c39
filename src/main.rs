//! `virt-pci`: the command line. Everything is in `src/cli/` (arguments and
//! printing) and the library (decisions); see ARCHITECTURE.md.

#[path = "cli/mod.rs"]
mod cli;

/// mimalloc, not the system allocator: reading a fleet's snapshots makes
/// millions of small allocations, and glibc's malloc and free were a
/// fifth of that work (BENCHMARKS.md "fleet").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::app::main()
}
