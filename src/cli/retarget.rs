//! `virt-pci --snapshot FROM.json retarget DOMAIN.xml --to HOST`: rewrite a
//! domain's hostdev source addresses for another host, as a byte-exact
//! splice with a reviewable diff.

use super::edit::{edit_error, emit, read_input, OutputArgs};
use super::place::LogicalArgs;
use super::{CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::domain::{self, hostdev::HostdevOptions};
use virt_pci::fleet::place::{self, Fit};
use virt_pci::fleet::FleetHost;

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// The domain XML file (`-` for stdin), written for the host the usual host
    /// options name (--snapshot FROM.json, --root, -c).
    #[arg(value_name = "DOMAIN.xml", value_hint = clap::ValueHint::FilePath)]
    domain: PathBuf,
    /// The host to move to: a snapshot file or a libvirt URI (NAME=SPEC names it).
    #[arg(long, required = true, value_name = "HOST")]
    pub(super) to: String,
    #[command(flatten)]
    logical: LogicalArgs,
    /// Write even when the target's plan blocks or a domain there holds the devices.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    out: OutputArgs,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let input = read_input(ctx, &args.domain, &args.out)?;
    let dom = place::read_domain(&input.text).map_err(|e| edit_error(&input, e))?;
    let mapping = match &args.logical.mapping {
        Some(p) => Some(super::fleet::load_mapping(p)?),
        None => None,
    };
    let source = super::fleet::source_host(ctx, args.logical.from.as_deref())?;
    let target = one_target(ctx, &args.to)?;
    let needs = place::needs(&dom, Some(&source), mapping.as_ref()).map_err(|r| {
        let mut e = CliError::usage(format!("{}: {}", input.name, r.message));
        if let Some(h) = r.help {
            e = e.help(h);
        }
        e
    })?;
    let moved = place::resolve(&needs, &target, mapping.as_ref()).map_err(|rs| {
        refusal(
            format!("{}: cannot retarget to {}", input.name, target.name),
            &rs,
        )
    })?;
    let fit = place::fit_on(&target, &moved, dom.name.as_deref());
    check_fit(ctx, &input.name, &target.name, &fit, args.force)?;
    let mut edit =
        domain::edit::retarget::retarget(&input.text, &moved).map_err(|e| edit_error(&input, e))?;
    if !fit.adds.is_empty() {
        // The target's group holds more functions than the domain names:
        // they go to the guest too, as `add` would write them.
        let opts = HostdevOptions {
            managed: dom_managed(&input.text),
            ..HostdevOptions::default()
        };
        let more =
            domain::edit::add(&edit.text, &fit.adds, &opts).map_err(|e| edit_error(&input, e))?;
        edit.text = more.text;
        eprintln!(
            "{}: {}'s IOMMU group also holds {}; added",
            input.name,
            target.name,
            join(fit.adds.iter())
        );
    }
    let pairs: Vec<String> = moved
        .iter()
        .filter(|(f, t)| f != t)
        .map(|(f, t)| format!("{f} → {t}"))
        .collect();
    if pairs.is_empty() && fit.adds.is_empty() {
        eprintln!(
            "{}: the addresses are the same on {}",
            input.name, target.name
        );
    } else if !pairs.is_empty() {
        eprintln!(
            "{}: {} → {}: {}",
            input.name,
            source.name,
            target.name,
            pairs.join(", ")
        );
    }
    emit(ctx, &args.out, &input, &edit)?;
    Ok(ExitCode::SUCCESS)
}

fn join<T: ToString>(items: impl Iterator<Item = T>) -> String {
    items.map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// `--to`: exactly one host.
fn one_target(ctx: &Context, to: &str) -> Result<FleetHost, CliError> {
    let mut targets = super::fleet::load_hosts(ctx, &[to.to_string()])?;
    if targets.len() != 1 {
        return Err(CliError::usage(format!(
            "--to {to} names {} hosts; retarget moves a domain to one",
            targets.len()
        ))
        .help("name one snapshot file or URI"));
    }
    Ok(targets.remove(0))
}

/// An error for the first reason (`what: reason`), the others and the first
/// one's help as help lines.
fn refusal(what: String, reasons: &[place::Reason]) -> CliError {
    let mut e = CliError::new(format!("{what}: {}", reasons[0].message));
    for r in &reasons[1..] {
        e = e.help(r.message.clone());
    }
    if let Some(h) = &reasons[0].help {
        e = e.help(h.clone());
    }
    e
}

/// Whether the devices can go to the guest on the target: a blocked or
/// unverified fit is refused (as `add` refuses: "ok" must be true), or only
/// warned about with `--force`.
fn check_fit(
    ctx: &Context,
    name: &str,
    target: &str,
    fit: &place::HostFit,
    force: bool,
) -> Result<(), CliError> {
    match fit.fit {
        Fit::Ok => Ok(()),
        Fit::Unverified | Fit::No if force => {
            for r in &fit.reasons {
                eprintln!(
                    "{}{} {} (--force)",
                    ctx.err.yellow("warning"),
                    ctx.err.bold(":"),
                    r.message
                );
            }
            Ok(())
        }
        Fit::Unverified | Fit::No => {
            let what = if fit.fit == Fit::Unverified {
                " (unverified)"
            } else {
                ""
            };
            Err(refusal(
                format!("{name}: refusing to retarget to {target}{what}"),
                &fit.reasons,
            )
            .help("nothing was written; --force writes it anyway"))
        }
    }
}

/// `managed` of new hostdevs: as the domain's existing ones (all `yes`, or
/// none), else libvirt's default.
fn dom_managed(text: &str) -> bool {
    let Ok(doc) = domain::edit::parse_domain(text) else {
        return true;
    };
    let hs = domain::pci_hostdevs(&doc);
    hs.is_empty() || hs.iter().any(|h| h.is_managed())
}
