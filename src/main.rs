//! `virt-pci`: the command line. Everything is in `src/cli/` (arguments and
//! printing) and the library (decisions); see ARCHITECTURE.md.

// Nothing outside this binary uses `cli`, so its items say who inside does:
// private (this file), `pub(super)` (other `cli/` files), `pub(crate)` (the
// binaries' `main`). A bare `pub` would say nothing; this lint refuses it.
#![warn(unreachable_pub)]

#[path = "cli/mod.rs"]
mod cli;

/// mimalloc, not the system allocator: reading a fleet's snapshots makes
/// millions of small allocations, and glibc's malloc and free were a
/// fifth of that work. It costs every start about 0.25 ms (BENCHMARKS.md,
/// Findings, 2026-12-01).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::app::main()
}
