//! `virt-pci place DOMAIN.xml HOST...`: on which hosts a domain's hostdevs
//! can run, with the reason for every host that cannot.

use super::edit::{edit_error, read_input, OutputArgs};
use super::{print_json, CliResult, Context};
use clap::Args as ClapArgs;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::fleet::place::{self, Fit};

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    /// The domain XML file (`-` for stdin).
    #[arg(value_name = "DOMAIN.xml", value_hint = clap::ValueHint::FilePath)]
    domain: PathBuf,
    /// Candidate hosts: snapshot files, directories of snapshots, libvirt URIs; NAME=SPEC names one.
    #[arg(required = true, value_name = "HOST")]
    pub(super) hosts: Vec<String>,
    #[command(flatten)]
    logical: LogicalArgs,
    /// Print JSON (schema: schemas/placement.schema.json).
    #[arg(long)]
    json: bool,
}

/// How hostdevs become logical devices (shared with `retarget`).
#[derive(ClapArgs, Debug, Clone)]
pub(super) struct LogicalArgs {
    /// A logical-device mapping: hostdevs with alias ua-NAME (or the source host's
    /// mapped addresses) are matched by name instead of by vendor:device.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub(super) mapping: Option<PathBuf>,
    /// The source host's name in the mapping (default: the snapshot's file name).
    #[arg(long, value_name = "NAME")]
    pub(super) from: Option<String>,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    let out = OutputArgs {
        diff: false,
        in_place: false,
        output: None,
        backup: None,
    };
    let input = read_input(ctx, &args.domain, &out)?;
    let dom = place::read_domain(&input.text).map_err(|e| edit_error(&input, e))?;
    let mapping = match &args.logical.mapping {
        Some(p) => Some(super::fleet::load_mapping(p)?),
        None => None,
    };
    // The host the domain runs on now, when the usual host options name one.
    let source = if super::fleet::has_source(ctx) {
        Some(super::fleet::source_host(
            ctx,
            args.logical.from.as_deref(),
        )?)
    } else {
        None
    };
    let needs = place::needs(&dom, source.as_ref(), mapping.as_ref()).map_err(|r| {
        let mut e = super::CliError::usage(format!("{}: {}", input.name, r.message));
        if let Some(h) = r.help {
            e = e.help(h);
        }
        e
    })?;
    let name = dom.name.clone();
    let fits = super::fleet::map_hosts(ctx, &args.hosts, &|fh| {
        place::fit(&needs, &fh, mapping.as_ref(), name.as_deref())
    })?;
    let p = place::placement(&dom, needs, fits);
    let runs = p.hosts.iter().filter(|h| h.fit != Fit::No).count();
    if args.json {
        print_json(&p)?;
    } else {
        super::emit(&render(
            ctx,
            &input.name,
            &p,
            source.as_ref().map(|s| s.name.as_str()),
        ));
    }
    Ok(if runs > 0 || p.needs.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn list(a: &[virt_pci::PciAddress]) -> String {
    a.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn render(ctx: &Context, file: &str, p: &place::Placement, source: Option<&str>) -> String {
    let s = &ctx.out;
    let mut out = String::new();
    let name = p.domain.as_deref().unwrap_or(file);
    if p.needs.is_empty() {
        let _ = writeln!(out, "{name} has no PCI hostdevs: it runs on any host");
        return out;
    }
    let _ = writeln!(out, "{} needs:", s.bold(name));
    for n in &p.needs {
        let from = match (&n.want, source) {
            (place::Want::Card { .. }, Some(src)) => format!(" (as on {src})"),
            _ => String::new(),
        };
        let _ = writeln!(out, "  {}: {}{from}", list(&n.from), n.describe());
    }
    for h in &p.hosts {
        let verdict = match h.fit {
            Fit::Ok => s.green("ok"),
            Fit::Unverified => s.yellow("unverified"),
            Fit::No => s.red("no"),
        };
        let _ = writeln!(out, "{}: {verdict}", s.bold(&h.host));
        if h.fit != Fit::No {
            let moved: Vec<String> = h
                .addresses
                .iter()
                .map(|m| {
                    if m.from == m.to {
                        m.to.to_string()
                    } else {
                        format!("{} → {}", m.from, m.to)
                    }
                })
                .collect();
            let _ = writeln!(out, "  {}", moved.join(", "));
            if !h.adds.is_empty() {
                let _ = writeln!(
                    out,
                    "  its IOMMU group adds {} (retarget adds them as hostdevs)",
                    list(&h.adds)
                );
            }
            for w in &h.warnings {
                let _ = writeln!(out, "  {}: {}", s.yellow("warning"), w.message);
            }
        }
        for r in &h.reasons {
            let _ = writeln!(out, "  {}", r.message);
        }
    }
    let ok: Vec<&str> = p
        .hosts
        .iter()
        .filter(|h| h.fit != Fit::No)
        .map(|h| h.host.as_str())
        .collect();
    let _ = writeln!(
        out,
        "can run on {} of {} host{}{}",
        ok.len(),
        p.hosts.len(),
        if p.hosts.len() == 1 { "" } else { "s" },
        if ok.is_empty() {
            String::new()
        } else {
            format!(": {}", ok.join(", "))
        }
    );
    out
}
