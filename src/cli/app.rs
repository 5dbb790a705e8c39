//! The `virt-pci` command line: argument parsing and dispatch only.
//! Each command lives in `src/cli/<command>.rs`; all decisions live in the
//! library (`src/lib.rs`). Both binaries (`virt-pci`, and the libvirt-linked
//! `virt-pci-libvirt`) run this.

use crate::cli;
use crate::cli::companion;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;
use virt_pci::invocation::{BackendChoice, HostUse, Invocation, Uses};

#[derive(Parser, Debug)]
#[command(
    name = "virt-pci",
    version,
    about = "Safe, boring PCI passthrough with libvirt",
    long_about = "virt-pci reads the host's PCI devices and IOMMU groups, plans which functions must be \
passed to a guest together, generates and patches libvirt <hostdev> XML byte-exactly, validates \
domain files, and detaches, resets and reattaches whole IOMMU groups.",
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List PCI functions by IOMMU group (or by bus topology with --tree).
    List(cli::list::Args),
    /// Everything about one device, its group, and the plan for passing it through.
    Show(cli::show::Args),
    /// A domain file's PCI host devices, with names, groups and drivers from the host.
    Hostdevs(cli::hostdevs::Args),
    /// The PCI controller behind a USB bus or device, and what else is on it.
    Usb(cli::usb::Args),
    /// Save the whole host model as JSON, for planning and validating offline.
    Snapshot(cli::snapshot::Args),
    /// Print <hostdev> elements for a device and its IOMMU group.
    Snippet(cli::snippet::Args),
    /// Add hostdevs for devices (and their groups) to a domain XML file.
    Add(cli::edit::AddArgs),
    /// Remove hostdevs from a domain XML file.
    Remove(cli::edit::RemoveArgs),
    /// Check domain XML files and hostdev snippets (pre-commit and CI).
    Validate(cli::validate::Args),
    /// Detach devices (whole IOMMU groups) from their host drivers to vfio-pci.
    Detach(cli::actions::DetachArgs),
    /// Give devices back to their host drivers.
    Reattach(cli::actions::ReattachArgs),
    /// Reset devices.
    Reset(cli::actions::DeviceActionArgs),
    /// Can this device be assigned? Reset methods, reset side effects, group viability.
    Check(cli::actions::CheckArgs),
    /// Detach every managed='no' hostdev of a domain (and its group) before start.
    Prepare(cli::actions::DomainActionArgs),
    /// After a domain stops: reset, then reattach its managed='no' hostdevs.
    Release(cli::actions::ReleaseArgs),
    /// Many hosts: what each can pass through (per group: clean, in use, blocked).
    Inventory(cli::inventory::Args),
    /// Logical devices across hosts: check a mapping file against the hosts.
    Map(cli::map::Args),
    /// Many hosts: where a domain's hostdevs can run, and why not elsewhere.
    Place(cli::place::Args),
    /// Rewrite a domain's hostdev addresses for another host (byte-exact splice).
    Retarget(cli::retarget::Args),
    /// Is this host ready for passthrough (IOMMU, interrupt remapping, vfio), and this device?
    Doctor(cli::doctor::Args),
    /// Check a VM start as libvirt's hook (DOMAIN OPERATION SUB-OP EXTRA, domain XML on stdin).
    Guard(cli::guard::GuardArgs),
    /// Install, remove or inspect the libvirt hook that runs `guard` at every VM start.
    Hook(cli::guard::HookArgs),
    /// Print the shell completion script (completes devices, domains, snapshot files).
    Completions(cli::complete::CompletionsArgs),
    /// Print the man page (roff), or a subcommand's; --dir writes them all.
    Man(cli::meta::ManArgs),
    /// Write a fake sysfs tree for a snapshot (developers: tests, demos).
    #[command(hide = true, name = "fake-sysfs")]
    FakeSysfs(cli::fake::Args),
    /// The connection's domain names, one a line (for shell completion).
    #[command(hide = true, name = "complete-domains")]
    CompleteDomains,
}

/// What each command uses: the host, domains by name, a backend. The one
/// input of [`Invocation::resolve`] that depends on the command.
fn uses(cmd: &Command) -> Uses {
    let required = Uses {
        host: HostUse::Required,
        ..Uses::default()
    };
    let act = |a: &cli::actions::ActOpts| Uses {
        backend: Some(match a.backend {
            cli::actions::BackendChoice::Auto => BackendChoice::Auto,
            cli::actions::BackendChoice::Libvirt => BackendChoice::Libvirt,
            cli::actions::BackendChoice::Sysfs => BackendChoice::Sysfs,
        }),
        ..required
    };
    let persist = Uses {
        backend: Some(BackendChoice::Sysfs),
        ..required
    };
    match cmd {
        Command::List(_)
        | Command::Show(_)
        | Command::Hostdevs(_)
        | Command::Usb(_)
        | Command::Snippet(_) => required,
        Command::Snapshot(a) if a.from_listing.is_some() => Uses::default(),
        Command::Snapshot(_) => required,
        Command::Add(a) => Uses {
            domains_by_name: a.target.domain.is_some(),
            ..required
        },
        Command::Remove(a) => remove_uses(a),
        Command::Validate(a) => Uses {
            host: HostUse::IfNamed,
            domains_by_name: !a.domains.is_empty() || a.all_domains,
            this_machine: a.this_machine,
            backend: None,
            fleet_uri: false,
        },
        // --persist writes files on a host's root through sysfs facts; never
        // libvirt, and -c is refused there ("--backend sysfs ... -c").
        Command::Detach(a) if a.persist.persist => persist,
        Command::Reattach(a) if a.persist.persist => persist,
        Command::Detach(a) => act(&a.common.act),
        Command::Reattach(a) => act(&a.common.act),
        Command::Reset(a) => act(&a.act),
        // The host checks read a root (or this machine); a typed -c adds
        // libvirt's view (and so hands over to the companion).
        Command::Doctor(_) => Uses {
            host: HostUse::IfNamed,
            ..Uses::default()
        },
        Command::Check(a) => act(&a.act),
        Command::Prepare(a) => act(&a.act),
        Command::Release(a) => act(&a.common.act),
        // The guard runs inside libvirt's start job: it reads sysfs under
        // --root itself and never libvirt; the hook files are not a host.
        Command::Guard(_) | Command::Hook(_) => Uses::default(),
        // Domain names for shell completion: only through libvirt.
        Command::CompleteDomains => Uses {
            domains_by_name: true,
            ..Uses::default()
        },
        // Many hosts: a URI among them is read through libvirt; `place`
        // reads the domain's current host only when one is named.
        Command::Inventory(a) => Uses {
            fleet_uri: cli::fleet::any_uri(&a.hosts),
            ..Uses::default()
        },
        Command::Map(a) => match &a.command {
            cli::map::MapCommand::Check(c) => Uses {
                fleet_uri: cli::fleet::any_uri(&c.hosts),
                ..Uses::default()
            },
            cli::map::MapCommand::Resolve(_) => required,
        },
        Command::Place(a) => Uses {
            host: HostUse::IfNamed,
            fleet_uri: cli::fleet::any_uri(&a.hosts),
            ..Uses::default()
        },
        Command::Retarget(a) => Uses {
            fleet_uri: cli::fleet::any_uri(std::slice::from_ref(&a.to)),
            ..required
        },
        Command::Completions(_) | Command::Man(_) | Command::FakeSysfs(_) => Uses::default(),
    }
}

/// `remove` needs a host to resolve vendor:device ids; otherwise a named
/// host tells which functions share a group.
fn remove_uses(a: &cli::edit::RemoveArgs) -> Uses {
    let by_ids = a.targets.iter().any(|t| {
        matches!(
            virt_pci::DeviceSpec::parse(t),
            Ok(virt_pci::DeviceSpec::Ids { .. })
        )
    });
    Uses {
        host: if by_ids {
            HostUse::Required
        } else {
            HostUse::IfNamed
        },
        domains_by_name: a.target.domain.is_some(),
        ..Uses::default()
    }
}

/// Parse the arguments, resolve the invocation, hand over to the
/// libvirt-linked companion if it needs libvirt (before any output), and
/// run the command.
pub(crate) fn main() -> ExitCode {
    cli::complete::complete_if_asked(Cli::command);
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let typed = |id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    cli.global.connect_on_command_line = typed("connect");
    cli.global.root_on_command_line = typed("root");
    let inv = match Invocation::resolve(&cli::Context::given(&cli.global), uses(&cli.command)) {
        Ok(inv) => inv,
        Err(e) => {
            let ctx = cli::Context::new(cli.global, Invocation::empty());
            let e = cli::CliError::from(e);
            ctx.report(&e);
            return ExitCode::from(e.exit_code);
        }
    };
    if inv.needs_libvirt() {
        if let Some(code) = companion::dispatch() {
            return code;
        }
    }
    let ctx = cli::Context::new(cli.global, inv);
    let result = match cli.command {
        Command::List(a) => cli::list::run(&ctx, a),
        Command::Show(a) => cli::show::run(&ctx, a),
        Command::Hostdevs(a) => cli::hostdevs::run(&ctx, a),
        Command::Usb(a) => cli::usb::run(&ctx, a),
        Command::Snapshot(a) => cli::snapshot::run(&ctx, a),
        Command::Snippet(a) => cli::snippet::run(&ctx, a),
        Command::Add(a) => cli::edit::run_add(&ctx, a),
        Command::Remove(a) => cli::edit::run_remove(&ctx, a),
        Command::Validate(a) => cli::validate::run(&ctx, a),
        Command::Detach(a) => cli::actions::run_detach(&ctx, a),
        Command::Reattach(a) => cli::actions::run_reattach(&ctx, a),
        Command::Reset(a) => cli::actions::run_reset(&ctx, a),
        Command::Check(a) => cli::actions::run_check(&ctx, a),
        Command::Prepare(a) => cli::actions::run_prepare(&ctx, a),
        Command::Release(a) => cli::actions::run_release(&ctx, a),
        Command::Inventory(a) => cli::inventory::run(&ctx, a),
        Command::Map(a) => cli::map::run(&ctx, a),
        Command::Place(a) => cli::place::run(&ctx, a),
        Command::Retarget(a) => cli::retarget::run(&ctx, a),
        Command::Doctor(a) => cli::doctor::run(&ctx, a),
        Command::Guard(a) => cli::guard::run_guard(&ctx, a),
        Command::Hook(a) => cli::guard::run_hook(&ctx, a),
        Command::Completions(a) => cli::complete::completions(a),
        Command::Man(a) => cli::meta::man(Cli::command(), a),
        Command::FakeSysfs(a) => cli::fake::run(&ctx, a),
        Command::CompleteDomains => cli::complete::run_domains(&ctx),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            ctx.report(&e);
            ExitCode::from(e.exit_code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
