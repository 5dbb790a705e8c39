//! `virt-pci validate PATH...`: the pre-commit and CI validator.
//! Arguments and printing only; the checks are `virt_pci::validate`.

use super::{CliError, CliResult, Context};
use clap::{Args as ClapArgs, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::invocation::HostSource;
use virt_pci::validate::{self, render::Format, Options};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// rustc-style text with the source line and a caret.
    Human,
    /// One JSON document (schemas/validate.schema.json).
    Json,
    /// GitHub workflow annotations (::error file=…,line=…).
    Github,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Deny {
    /// Every warning is an error.
    Warnings,
    /// A device or IOMMU group shared between domains is an error.
    Shared,
}

#[derive(ClapArgs, Debug)]
#[command(
    after_help = "Host checks (device present, IOMMU group viable, bridges, host-critical \
devices, reset) run only when a host is named: --this-machine, --root DIR, --snapshot FILE or -c URI.\n\
Exit status: 0 no errors, 1 errors (or warnings with --deny warnings), 2 usage or I/O problems \
(also: nothing to check, unless --allow-empty)."
)]
pub(super) struct Args {
    /// Files, or directories searched for *.xml; `-` reads stdin.
    #[arg(
        required_unless_present_any = ["domains", "all_domains"],
        value_name = "PATH",
        value_hint = clap::ValueHint::AnyPath
    )]
    paths: Vec<PathBuf>,
    /// Check a libvirt domain's persistent XML by name (repeatable); host checks
    /// run against the same connection's host (-c, LIBVIRT_DEFAULT_URI, or qemu:///system).
    #[arg(long = "domain", value_name = "NAME")]
    pub(super) domains: Vec<String>,
    /// Check every defined domain of the connection.
    #[arg(long)]
    pub(super) all_domains: bool,
    /// Also check against this machine (its sysfs).
    #[arg(long)]
    pub(super) this_machine: bool,
    /// Renamed to --this-machine (`--live` means hot-plug in add/remove).
    #[arg(long, hide = true)]
    live: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, value_name = "FORMAT")]
    format: OutputFormat,
    /// Make warnings (or only sharing between domains) errors; repeatable.
    #[arg(long, value_enum, value_name = "WHAT")]
    deny: Vec<Deny>,
    /// Pass when there is nothing to check (a directory with no *.xml, no
    /// defined domain); without it that is an error (exit 2), since a wrong
    /// path would otherwise pass.
    #[arg(long)]
    allow_empty: bool,
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    if args.live {
        return Err(CliError::usage(
            "validate --live is now --this-machine (--live means hot-plug, as in add and remove)",
        )
        .help(
            "check against this machine's sysfs with `virt-pci validate --this-machine PATH...`",
        ));
    }
    let stdin_paths = args.paths.iter().filter(|p| p.as_os_str() == "-").count();
    if stdin_paths > 0 && ctx.global.snapshot.as_deref() == Some(std::path::Path::new("-")) {
        return Err(
            CliError::usage("`-` (stdin) is given for both the files and --snapshot")
                .help("stdin can be read once; save one of them to a file"),
        );
    }
    if stdin_paths > 1 {
        return Err(CliError::usage("`-` (stdin) is given more than once")
            .help("stdin can be read once; give `-` once"));
    }
    // Which host (if any) was decided once, by the invocation: --snapshot,
    // --root, a typed -c, or --this-machine; LIBVIRT_DEFAULT_URI alone is
    // set for virsh on many hypervisors and does not change the verdict.
    let from_libvirt = !args.domains.is_empty() || args.all_domains;
    if args.this_machine && from_libvirt {
        return Err(CliError::usage(
            "--domain/--all-domains read the host of the libvirt connection; drop --this-machine",
        ));
    }
    let (domain_sources, libvirt_host) = if from_libvirt {
        let (s, h) = domain_sources(ctx, &args)?;
        (s, Some(h))
    } else {
        (Vec::new(), None)
    };
    // Facts from --snapshot/--root when given (the connection then gives
    // only the domains), else from the connection's host.
    let host = if let (Some(h), HostSource::Libvirt(_) | HostSource::None) =
        (libvirt_host, &ctx.inv.host)
    {
        Some(h)
    } else if ctx.inv.host != HostSource::None {
        Some(ctx.host()?)
    } else {
        None
    };
    let opts = Options {
        deny_warnings: args.deny.contains(&Deny::Warnings),
        deny_shared: args.deny.contains(&Deny::Shared),
    };
    let mut inputs = validate::read_inputs(&args.paths);
    for n in &inputs.notes {
        eprintln!("{}{} {n}", ctx.err.bold("note"), ctx.err.bold(":"));
    }
    inputs.sources.extend(domain_sources);
    if inputs.nothing_to_check() && !args.allow_empty {
        let what: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        let mut e = CliError::usage(if what.is_empty() {
            "nothing to check: the connection has no defined domain".to_string()
        } else {
            format!("nothing to check: no *.xml file in {}", what.join(", "))
        });
        if !what.is_empty() {
            e = e.help("give domain XML files, or directories that hold them");
        }
        return Err(e.help("--allow-empty passes when there is nothing to check"));
    }
    let report = validate::validate(&inputs, host.as_ref(), opts);
    let format = match args.format {
        OutputFormat::Human => Format::Human,
        OutputFormat::Json => Format::Json,
        OutputFormat::Github => Format::Github,
    };
    super::emit(&validate::render::render(
        &report,
        &inputs.sources,
        format,
        ctx.out.on,
    ));
    Ok(ExitCode::from(report.exit_status()))
}

/// The persistent XML of the named (or all) domains, shown as `domain:NAME`,
/// and the host of that connection.
fn domain_sources(
    ctx: &Context,
    args: &Args,
) -> Result<(Vec<validate::Source>, virt_pci::Host), CliError> {
    let conn = ctx
        .libvirt(ctx.domains_uri().as_deref(), true)
        .map_err(|e| e.code(2))?;
    let infos = if args.all_domains {
        conn.domains().map_err(super::libvirt_error)?
    } else {
        let mut v = Vec::new();
        for n in &args.domains {
            v.push(
                conn.domain(n)
                    .map_err(|e| super::libvirt_error(e).code(2))?,
            );
        }
        v
    };
    let sources = infos
        .into_iter()
        .map(|d| validate::Source {
            path: format!("domain:{}", d.name),
            text: d.inactive_xml,
        })
        .collect();
    let host = ctx.read_libvirt_host(&conn).map_err(|e| e.code(2))?;
    Ok((sources, host))
}
