//! `virt-pci add` / `virt-pci remove`: byte-exact edits of domain XML.
//!
//! Reading, the plan and the splice happen before anything is written; an
//! error at any step leaves every file as it was. The edit itself is
//! `virt_pci::xml` (pure text in, text out); writing is
//! `virt_pci::fsutil::write_atomic`.

use super::snippet::{option_error, plan_devices, warn_options, GroupArgs, HostdevArgs};
use super::{parse_specs, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use virt_pci::xml::{self, Edit, EditError, Selection};
use virt_pci::{fsutil, DeviceSpec};

/// Where the result goes (default: stdout).
#[derive(ClapArgs, Debug, Clone)]
pub struct OutputArgs {
    /// Print a unified diff of the change and write nothing.
    #[arg(long, conflicts_with_all = ["in_place", "output"])]
    pub diff: bool,
    /// Rewrite FILE in place (atomically; mode, owner and symlinks kept).
    #[arg(short = 'i', long, conflicts_with = "output")]
    pub in_place: bool,
    /// Write the result to OUT instead of stdout.
    #[arg(short = 'o', long, value_name = "OUT", value_hint = clap::ValueHint::FilePath)]
    pub output: Option<PathBuf>,
    /// With -i: keep the old file as FILE<SUFFIX> (e.g. --backup .orig).
    #[arg(long, value_name = "SUFFIX", requires = "in_place")]
    pub backup: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub struct AddArgs {
    /// The domain XML file (`-` for stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The devices: 0000:03:00.0, 03:00.0, pci_0000_03_00_0, 03:00 (all functions), 10de:1f82, ...
    #[arg(required = true, value_name = "DEVICE")]
    pub devices: Vec<String>,
    #[command(flatten)]
    pub hostdev: HostdevArgs,
    #[command(flatten)]
    pub group: GroupArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(ClapArgs, Debug)]
pub struct RemoveArgs {
    /// The domain XML file (`-` for stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The devices to remove: functions (0000:03:00.0) or slots (03:00, all functions).
    #[arg(
        value_name = "DEVICE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub devices: Vec<String>,
    /// Remove every PCI <hostdev> (not <interface type='hostdev'>).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

struct Input {
    /// The name in messages and diff labels.
    name: String,
    /// `None` for stdin.
    path: Option<PathBuf>,
    text: String,
}

fn read_input(file: &Path, out: &OutputArgs) -> Result<Input, CliError> {
    if file.as_os_str() == "-" {
        if out.in_place {
            return Err(CliError::usage("cannot edit stdin in place")
                .help("drop -i to write the result to stdout, or give -o FILE"));
        }
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
        let text = String::from_utf8(buf).map_err(|e| {
            CliError::usage(format!(
                "stdin is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ))
            .help("libvirt writes domain XML in UTF-8; convert it with iconv")
        })?;
        return Ok(Input {
            name: "<stdin>".into(),
            path: None,
            text,
        });
    }
    let name = file.display().to_string();
    let buf = std::fs::read(file).map_err(|e| {
        CliError::usage(format!("cannot read {name}: {e}")).help(
            "give the path of a domain XML file (`virsh dumpxml DOMAIN > vm.xml`), or - for stdin",
        )
    })?;
    let text = String::from_utf8(buf).map_err(|e| {
        CliError::usage(format!(
            "{name} is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
        .help("libvirt writes domain XML in UTF-8; convert it with iconv")
    })?;
    Ok(Input {
        name,
        path: Some(file.to_path_buf()),
        text,
    })
}

fn edit_error(input: &Input, e: EditError) -> CliError {
    let code = match e {
        EditError::Absent { .. } | EditError::Internal(_) => 1,
        _ => 2,
    };
    let mut c = CliError::new(format!("{}: {e}", input.name)).code(code);
    if let Some((l, col)) = e.position() {
        c = c.at(format!("{}:{l}:{col}", input.name));
    }
    if let Some(h) = e.help() {
        c = c.help(h);
    }
    c
}

fn write_error(e: fsutil::WriteError) -> CliError {
    let full = matches!(e.source.raw_os_error(), Some(28) | Some(122));
    let ro = matches!(e.source.raw_os_error(), Some(13) | Some(30) | Some(1));
    let mut c = CliError::usage(e.to_string());
    if full {
        c = c.help("free some space on that filesystem; the original file was not changed");
    } else if ro {
        c = c.help("write somewhere writable with -o FILE, or run with the rights to edit it; the original file was not changed");
    } else {
        c = c.help("the original file was not changed");
    }
    c
}

/// Send the result where the options say.
fn emit(ctx: &Context, out: &OutputArgs, input: &Input, edit: &Edit) -> Result<(), CliError> {
    if out.diff {
        let d = virt_pci::diff::unified(&input.text, &edit.text, &input.name, ctx.out.on);
        print!("{d}");
        return Ok(());
    }
    if out.in_place {
        let Some(path) = &input.path else {
            return Err(CliError::usage("cannot edit stdin in place"));
        };
        if edit.text != input.text {
            fsutil::write_atomic(path, edit.text.as_bytes(), out.backup.as_deref())
                .map_err(write_error)?;
            eprintln!("wrote {}", input.name);
        } else {
            eprintln!("{} unchanged; nothing written", input.name);
        }
        return Ok(());
    }
    if let Some(o) = &out.output {
        if o.as_os_str() == "-" {
            return print_stdout(&edit.text);
        }
        fsutil::write_atomic(o, edit.text.as_bytes(), None).map_err(write_error)?;
        eprintln!("wrote {}", o.display());
        return Ok(());
    }
    print_stdout(&edit.text)
}

fn print_stdout(s: &str) -> Result<(), CliError> {
    let mut so = std::io::stdout().lock();
    so.write_all(s.as_bytes())
        .and_then(|()| so.flush())
        .map_err(|e| CliError::usage(format!("cannot write to stdout: {e}")))
}

fn list(a: &[virt_pci::PciAddress]) -> String {
    a.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run_add(ctx: &Context, args: AddArgs) -> CliResult {
    args.hostdev.options(None)?;
    let input = read_input(&args.file, &args.out)?;
    // Refuse a bad file before reading the host or printing a plan.
    xml::parse_domain(&input.text).map_err(|e| edit_error(&input, e))?;
    let (addrs, primary, _plan) = plan_devices(ctx, &args.devices, &args.group)?;
    if addrs.is_empty() {
        return Err(CliError::new("nothing to pass through"));
    }
    let opts = args.hostdev.options(primary)?;
    opts.check(&addrs).map_err(option_error)?;
    warn_options(ctx, &opts);
    let edit = xml::add(&input.text, &addrs, &opts).map_err(|e| edit_error(&input, e))?;
    if !edit.already_present.is_empty() {
        eprintln!("already in {}: {}", input.name, list(&edit.already_present));
    }
    if edit.added.is_empty() {
        eprintln!("nothing to add; {} is unchanged", input.name);
    } else {
        eprintln!("adding to {}: {}", input.name, list(&edit.added));
    }
    emit(ctx, &args.out, &input, &edit)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_remove(ctx: &Context, args: RemoveArgs) -> CliResult {
    let input = read_input(&args.file, &args.out)?;
    xml::parse_domain(&input.text).map_err(|e| edit_error(&input, e))?;
    let sel = if args.all {
        Selection::All
    } else {
        let specs = parse_specs(&args.devices)?;
        let mut resolved = Vec::new();
        for s in specs {
            match s {
                // vendor:device ids name devices of a host; read it.
                DeviceSpec::Ids { .. } => {
                    let host = ctx.host()?;
                    for a in host.resolve(&s)? {
                        resolved.push(DeviceSpec::Function(a));
                    }
                }
                s => resolved.push(s),
            }
        }
        Selection::Only(resolved)
    };
    let edit = xml::remove(&input.text, &sel).map_err(|e| edit_error(&input, e))?;
    for w in &edit.warnings {
        eprintln!("{}{} {w}", ctx.err.yellow("warning"), ctx.err.bold(":"));
    }
    if edit.text == input.text {
        eprintln!("{} has no PCI hostdevs; nothing removed", input.name);
    } else {
        eprintln!("removing from {}: {}", input.name, list(&edit.removed));
    }
    emit(ctx, &args.out, &input, &edit)?;
    Ok(ExitCode::SUCCESS)
}
