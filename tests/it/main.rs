//! virt-pci's integration tests: one test binary (`cargo test --test it`),
//! one module per subject, so the crate links once and every test that
//! starts the `virt-pci` binary shares one guarded runner (`run.rs`: no run
//! without a fake root, a snapshot or a `test:///` URI).
//!
//! Run one subject with a filter: `cargo test --test it cli_guard::`.

// Helpers outside #[test] functions unwrap too: a panic is a failed test
// (Cargo.toml's [lints] deny unwrap()/expect() in the program).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod actions_sysfs;
mod cli_basics;
mod cli_edit;
mod cli_guard;
mod cli_messages;
mod cli_samples;
mod completions;
mod corpus_edit;
mod doctor;
mod fakesys;
mod fixture_host;
mod fleet;
mod golden;
mod hostile_inputs;
mod hostile_root;
mod hostile_writes;
mod libvirt_driver;
mod nodedev_corpus;
mod persist;
mod prop_edit;
mod readme;
mod run;
mod samples;
mod setup;
mod snapshots;
mod validate_cli;
