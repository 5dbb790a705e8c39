//! `virt-pci hostdevs FILE`: a domain's PCI host devices with the names,
//! groups and drivers the host gives them. The report is
//! `virt_pci::report::hostdevs_report`; this file reads the input and prints.

use super::{print_json, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::fmt::Write as _;
use std::io::Read;
use std::process::ExitCode;
use virt_pci::diagnostic::Located;
use virt_pci::report;

#[derive(ClapArgs, Debug)]
#[command(
    after_help = "The host is the one every command reads: --snapshot FILE, --root DIR, \
-c URI, or this machine. `virt-pci validate` judges the file; this lists what is in it."
)]
pub(super) struct Args {
    /// A domain XML file (`virsh dumpxml NAME > vm.xml`), a snippet file, or `-` for stdin.
    #[arg(value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    file: String,
    /// Print JSON (schemas/hostdevs.schema.json).
    #[arg(long)]
    json: bool,
}

fn read(ctx: &Context, file: &str) -> Result<(String, String), CliError> {
    if file == "-" {
        if ctx.global.snapshot.as_deref() == Some(std::path::Path::new("-")) {
            return Err(
                CliError::usage("`-` (stdin) is given for both the domain and --snapshot")
                    .help("stdin can be read once; save one of them to a file"),
            );
        }
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
        return Ok(("<stdin>".into(), s));
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::usage(format!("cannot read {file}: {e}"))
            .help("give a domain XML file (`virsh dumpxml DOMAIN > vm.xml`), or - for stdin")
    })?;
    Ok((file.to_string(), text))
}

pub(super) fn run(ctx: &Context, args: Args) -> CliResult {
    // The file first: a bad file is refused before the host is read.
    let (name, text) = read(ctx, &args.file)?;
    virt_pci::domain::parse(&text).map_err(|e| {
        CliError::usage(format!("{name} is not well-formed XML: {}", e.reason()))
            .in_file(Located::at(name.as_str(), &text, e.line, e.column))
            .help("fix the XML (or get a fresh copy with `virsh dumpxml DOMAIN`)")
    })?;
    let host = ctx.host()?;
    let r = report::hostdevs_report(&name, &text, &host, ctx.ids())
        .map_err(|e| CliError::usage(format!("{name}: {}", e.message)))?;
    if args.json {
        return print_json(&r);
    }
    let s = &ctx.out;
    let mut out = String::new();
    let n = r.hostdevs.len();
    let _ = writeln!(
        out,
        "{}: {n} PCI host device{} (names from {})",
        s.bold(&match &r.domain {
            Some(d) => format!("{d} ({name})"),
            None => name.clone(),
        }),
        if n == 1 { "" } else { "s" },
        r.host
    );
    for h in &r.hostdevs {
        let addr = h
            .address
            .map(|a| a.to_string())
            .unwrap_or_else(|| "(unreadable address)".into());
        let managed = if h.managed { "managed" } else { "managed='no'" };
        let what = if h.element == "interface" {
            " <interface type='hostdev'>"
        } else {
            ""
        };
        let facts = match (&h.device, h.address) {
            (Some(d), _) => {
                let dev = host.device(&d.address);
                let name = dev.map(|x| super::device_name(ctx, x)).unwrap_or_default();
                let group = d
                    .iommu_group
                    .map(|g| format!("group {g}"))
                    .unwrap_or_else(|| "no IOMMU group".into());
                format!(
                    "{name}  {group}  driver={}",
                    d.driver.as_deref().unwrap_or("none")
                )
            }
            (None, Some(_)) => s.red(&format!("not present on {}", r.host)),
            (None, None) => s.red("`virt-pci validate` explains why libvirt cannot read it"),
        };
        let _ = writeln!(
            out,
            "  {}  {managed:<12} {facts}{what}  {}",
            s.bold(&addr),
            s.dim(&format!("line {}", h.line))
        );
    }
    // One note per group, after the list (every hostdev of the group has
    // the same missing members).
    let mut said: Vec<Option<u32>> = Vec::new();
    for h in &r.hostdevs {
        let group = h.device.as_ref().and_then(|d| d.iommu_group);
        if h.group_missing.is_empty() || said.contains(&group) {
            continue;
        }
        said.push(group);
        let list: Vec<String> = h.group_missing.iter().map(|a| a.to_string()).collect();
        let _ = writeln!(
            out,
            "{}: IOMMU group {} also holds {}, which the domain does not have; the guest does not start under VFIO until {} off host drivers",
            s.yellow("note"),
            group.map(|g| g.to_string()).unwrap_or_default(),
            list.join(", "),
            if list.len() == 1 { "it is" } else { "they are" }
        );
    }
    super::emit(&out);
    Ok(ExitCode::SUCCESS)
}
