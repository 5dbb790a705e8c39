//! `virt-pci map check MAPPING --hosts HOST...`: does a logical-device
//! mapping still match the hosts?

use super::{print_json, CliError, CliResult, Context};
use clap::{Args as ClapArgs, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::fleet::mapping;

#[derive(ClapArgs, Debug)]
pub(super) struct Args {
    #[command(subcommand)]
    pub(super) command: MapCommand,
}

#[derive(Subcommand, Debug)]
pub(super) enum MapCommand {
    /// Check every entry of a mapping against its host: card moved, replaced, group changed.
    Check(CheckArgs),
    /// Where logical devices are on the host the usual host options name (checked first).
    Resolve(ResolveArgs),
}

#[derive(ClapArgs, Debug)]
pub(super) struct ResolveArgs {
    /// The mapping file.
    #[arg(value_name = "MAPPING", value_hint = clap::ValueHint::FilePath)]
    mapping: PathBuf,
    /// Logical device names.
    #[arg(required = true, value_name = "NAME")]
    names: Vec<String>,
    /// This host's name in the mapping (default: the snapshot's file name).
    #[arg(long, value_name = "HOST")]
    from: Option<String>,
    /// Print JSON: [{"name", "host", "path", "functions", "warnings"}].
    #[arg(long)]
    json: bool,
}

#[derive(ClapArgs, Debug)]
pub(super) struct CheckArgs {
    /// The mapping file (format: README.md "Many hosts"; schema: schemas/mapping.schema.json).
    #[arg(value_name = "MAPPING", value_hint = clap::ValueHint::FilePath)]
    mapping: PathBuf,
    /// The hosts to check against: snapshot files, directories of snapshots, libvirt URIs.
    #[arg(long, required = true, num_args = 1.., value_name = "HOST")]
    pub(super) hosts: Vec<String>,
    /// Print JSON: {"checked", "not_checked", "problems": [{code, device, host, address, message, help, error}]}.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    match args.command {
        MapCommand::Check(a) => check(ctx, a),
        MapCommand::Resolve(a) => resolve(ctx, a),
    }
}

fn resolve(ctx: &Context, args: ResolveArgs) -> CliResult {
    let m = super::fleet::load_mapping(&args.mapping)?;
    let host = super::fleet::source_host(ctx, args.from.as_deref())?;
    let mut out = Vec::new();
    for n in &args.names {
        match mapping::resolve(&m, n, &host.name, &host.host) {
            Ok(r) => out.push(r),
            Err(problems) => {
                let p = &problems[0];
                let mut e = CliError::new(p.message.clone());
                for q in &problems[1..] {
                    e = e.help(q.message.clone());
                }
                if let Some(h) = &p.help {
                    e = e.help(h.clone());
                }
                return Err(e);
            }
        }
    }
    if args.json {
        return print_json(&out);
    }
    for r in &out {
        let fs: Vec<String> = r.functions.iter().map(|a| a.to_string()).collect();
        super::emit(&format!(
            "{} on {}: {} ({})\n",
            r.name,
            r.host,
            r.path,
            fs.join(", ")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn check(ctx: &Context, args: CheckArgs) -> CliResult {
    let m = super::fleet::load_mapping(&args.mapping)?;
    let per_host = super::fleet::map_hosts(ctx, &args.hosts, &|fh| {
        (fh.name.clone(), mapping::check_host(&m, &fh))
    })?;
    let names: Vec<String> = per_host.iter().map(|(n, _)| n.clone()).collect();
    let r = mapping::report(&m, &names, per_host.into_iter().map(|(_, r)| r).collect());
    let host_count = names.len();
    let failed = r.errors() > 0;
    if args.json {
        print_json(&r)?;
    } else {
        let file = args.mapping.display().to_string();
        for p in &r.problems {
            let loc = format!("{file}: devices.{}.hosts.{}", p.device, p.host);
            if p.error {
                let mut e = CliError::new(p.message.clone()).at(loc);
                if let Some(h) = &p.help {
                    e = e.help(h.clone());
                }
                ctx.report(&e);
            } else {
                let s = &ctx.err;
                eprintln!(
                    "{}{} {}",
                    s.yellow("warning"),
                    s.bold(":"),
                    s.bold(&p.message)
                );
                eprintln!("  {} {loc}", s.cyan("-->"));
                if let Some(h) = &p.help {
                    eprintln!("{}{} {h}", s.cyan("help"), s.bold(":"));
                }
            }
        }
        let warnings = r.problems.len() - r.errors();
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let mut line = format!(
            "{}: checked {} against {}: {}, {}",
            file,
            plural(r.checked, "entry").replace("entrys", "entries"),
            plural(host_count, "host"),
            plural(r.errors(), "error"),
            plural(warnings, "warning"),
        );
        if !r.not_checked.is_empty() {
            let v: Vec<String> = r
                .not_checked
                .iter()
                .map(|(d, h)| format!("{d} on {h}"))
                .collect();
            line.push_str(&format!("; not checked (host not given): {}", v.join(", ")));
        }
        super::emit(&format!("{line}\n"));
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
