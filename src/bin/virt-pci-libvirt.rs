//! `virt-pci-libvirt`: the same command line, linked with libvirt.
//!
//! Linking libvirt costs every start about 9 ms of dynamic loading (57
//! shared libraries: gnutls, glib, ...; BENCHMARKS.md), eight times what
//! the rest of a typical run takes. So `virt-pci` is built without libvirt
//! and hands over to this companion (installed next to it) only for the
//! invocations that use libvirt: `-c URI`, `--domain`, and acting on this
//! machine's devices with the libvirt backend. See `src/cli/companion.rs`.

// Nothing outside this binary uses `cli`, so its items say who inside does:
// private (this file), `pub(super)` (other `cli/` files), `pub(crate)` (the
// binaries' `main`). A bare `pub` would say nothing; this lint refuses it.
#![warn(unreachable_pub)]

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::app::main()
}
