//! `virt-pci add` / `virt-pci remove`: byte-exact edits of domain XML.
//!
//! Reading, the plan and the splice happen before anything is written; an
//! error at any step leaves every file as it was. The edit itself is
//! `virt_pci::domain::edit` (pure text in, text out); writing is
//! `virt_pci::fsutil::write_atomic`.

use super::edit_domain::DomainSession;
use super::snippet::{check_options_early, plan_hostdevs, GroupArgs, HostdevArgs};
use super::{parse_specs, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use virt_pci::diagnostic::Located;
use virt_pci::domain::{
    self,
    edit::{Edit, EditError, Selection},
};
use virt_pci::libvirt::Change;
use virt_pci::{fsutil, DeviceSpec};

/// Where the result goes (default: stdout).
#[derive(ClapArgs, Debug, Clone)]
pub(super) struct OutputArgs {
    /// Print a unified diff of the change and write nothing.
    #[arg(long, conflicts_with_all = ["in_place", "output"])]
    pub(super) diff: bool,
    /// Rewrite FILE in place (atomically; mode, owner and symlinks kept).
    #[arg(short = 'i', long, conflicts_with = "output")]
    pub(super) in_place: bool,
    /// Write the result to OUT instead of stdout.
    #[arg(short = 'o', long, value_name = "OUT", value_hint = clap::ValueHint::FilePath)]
    pub(super) output: Option<PathBuf>,
    /// With -i: keep the old file as FILE<SUFFIX> (e.g. --backup .orig).
    #[arg(long, value_name = "SUFFIX", requires = "in_place")]
    pub(super) backup: Option<String>,
}

/// A libvirt domain to edit instead of a file.
#[derive(ClapArgs, Debug, Clone)]
pub(super) struct DomainArgs {
    /// Edit the persistent XML of this libvirt domain and redefine it (with libvirt's
    /// schema validation) instead of editing FILE; --diff shows the change and defines nothing.
    #[arg(long, value_name = "NAME")]
    pub(super) domain: Option<String>,
    /// With --domain: also hot-plug (add) or hot-unplug (remove) on the running domain.
    #[arg(long, requires = "domain")]
    pub(super) live: bool,
}

#[derive(ClapArgs, Debug)]
#[command(
    override_usage = "virt-pci add [OPTIONS] <FILE> <DEVICE>...\n       virt-pci add [OPTIONS] --domain <NAME> <DEVICE>..."
)]
pub(super) struct AddArgs {
    /// The domain XML file (`-` for stdin), then the devices: 0000:03:00.0, 03:00.0,
    /// pci_0000_03_00_0, 03:00 (all functions), 10de:1f82, ... (no FILE with --domain)
    #[arg(required = true, value_name = "FILE DEVICE")]
    targets: Vec<String>,
    #[command(flatten)]
    pub(super) target: DomainArgs,
    #[command(flatten)]
    hostdev: HostdevArgs,
    #[command(flatten)]
    group: GroupArgs,
    /// With --force: the reason recorded in the domain's consent entry (see `virt-pci guard --help`).
    #[arg(long, value_name = "TEXT", requires = "force")]
    reason: Option<String>,
    /// Print the change as JSON (schemas/edit.schema.json: the XML before and after, the
    /// functions added and removed) instead of the XML; written only with -i, -o FILE or
    /// --domain, and with --diff nothing is written or defined.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(ClapArgs, Debug)]
#[command(
    override_usage = "virt-pci remove [OPTIONS] <FILE> (<DEVICE>...|--all)\n       virt-pci remove [OPTIONS] --domain <NAME> (<DEVICE>...|--all)"
)]
pub(super) struct RemoveArgs {
    /// The domain XML file (`-` for stdin), then the devices to remove: functions
    /// (0000:03:00.0) or slots (03:00, all functions). No FILE with --domain.
    #[arg(value_name = "FILE DEVICE")]
    pub(super) targets: Vec<String>,
    /// Remove every PCI <hostdev> (not <interface type='hostdev'>).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    pub(super) target: DomainArgs,
    /// Print the change as JSON (schemas/edit.schema.json: the XML before and after, the
    /// functions added and removed) instead of the XML; written only with -i, -o FILE or
    /// --domain, and with --diff nothing is written or defined.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// The document to edit: a libvirt domain's persistent XML (with the
/// session that will redefine it) or a file / stdin.
fn open_target(
    ctx: &Context,
    file: Option<&Path>,
    target: &DomainArgs,
    out: &OutputArgs,
) -> Result<(Option<DomainSession>, Input), CliError> {
    let session = DomainSession::open(ctx, target)?;
    let input = match (&session, file) {
        (Some(s), _) => s.input()?,
        (None, Some(f)) => read_input(ctx, f, out)?,
        (None, None) => return Err(CliError::usage("no domain XML file given")),
    };
    Ok((session, input))
}

/// Split the positional words into (FILE, DEVICE...) as --domain says.
fn split_targets<'a>(
    targets: &'a [String],
    target: &DomainArgs,
    out: &OutputArgs,
    need_devices: bool,
) -> Result<(Option<PathBuf>, &'a [String]), CliError> {
    let (file, devices) = if target.domain.is_some() {
        if out.in_place {
            return Err(CliError::usage(
                "-i edits a file; with --domain the domain itself is redefined",
            )
            .help("drop -i (or use --diff to only see the change)"));
        }
        (None, targets)
    } else {
        match targets.split_first() {
            Some((f, rest)) => (Some(PathBuf::from(f)), rest),
            None => {
                return Err(CliError::usage("no domain XML file given")
                    .help("give FILE (or - for stdin), or --domain NAME"))
            }
        }
    };
    if need_devices && devices.is_empty() {
        return Err(CliError::usage("no device given")
            .help("name devices as 0000:03:00.0, 03:00.0, pci_0000_03_00_0, 03:00 or 10de:1f82"));
    }
    Ok((file, devices))
}

pub(super) struct Input {
    /// The name in messages and diff labels.
    pub(super) name: String,
    /// `None` for stdin.
    path: Option<PathBuf>,
    pub(super) text: String,
    /// With -i: the file's lock, held from before the read to after the
    /// rename, so concurrent edits of one file are serialised.
    _lock: Option<fsutil::FileLock>,
}

impl Input {
    /// A document that is no file (a libvirt domain's XML).
    pub(super) fn unlocked(name: String, text: String) -> Input {
        Input {
            name,
            path: None,
            text,
            _lock: None,
        }
    }
}

pub(super) fn read_input(ctx: &Context, file: &Path, out: &OutputArgs) -> Result<Input, CliError> {
    if file.as_os_str() == "-" {
        if ctx.global.snapshot.as_deref() == Some(Path::new("-")) {
            return Err(
                CliError::usage("`-` (stdin) is given for both the domain and --snapshot")
                    .help("stdin can be read once; save one of them to a file"),
            );
        }
        if out.in_place {
            return Err(CliError::usage("cannot edit stdin in place")
                .help("drop -i to write the result to stdout, or give -o FILE"));
        }
        let mut buf = Vec::new();
        std::io::stdin()
            .take(fsutil::MAX_XML_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| CliError::usage(format!("cannot read stdin: {e}")))?;
        if buf.len() as u64 > fsutil::MAX_XML_BYTES {
            return Err(CliError::usage("stdin holds more than 10 MiB")
                .help("virsh refuses XML files over 10 MiB (VSH_MAX_XML_FILE); this is not a domain libvirt wrote"));
        }
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
            _lock: None,
        });
    }
    let name = virt_pci::text::shorten(&file.display().to_string());
    let lock = if out.in_place {
        fsutil::lock(file).map_err(|e| write_error(e, true))?
    } else {
        None
    };
    let buf = fsutil::read_any_limited(file, fsutil::MAX_XML_BYTES).map_err(|e| {
        let c = CliError::usage(format!("cannot read {name}: {e}"));
        if matches!(e, fsutil::ReadError::TooLarge(_)) {
            c.help("virsh refuses XML files over 10 MiB (VSH_MAX_XML_FILE); this is not a domain libvirt wrote")
        } else {
            c.help("give the path of a domain XML file (`virsh dumpxml DOMAIN > vm.xml`), or - for stdin")
        }
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
        _lock: lock,
    })
}

pub(super) fn edit_error(input: &Input, e: EditError) -> CliError {
    let code = match e {
        EditError::Absent { .. }
        | EditError::Internal(_)
        | EditError::Guest(_)
        | EditError::PresentWithOptions { .. } => 1,
        _ => 2,
    };
    let mut c = CliError::new(format!("{}: {e}", input.name)).code(code);
    if let Some((l, col)) = e.position() {
        c = c.in_file(Located::at(input.name.as_str(), &input.text, l, col));
    }
    match (&e, &input.path) {
        // A command that runs as printed when we know the file.
        (EditError::PresentWithOptions { present, .. }, Some(p)) => {
            c = c.help(format!(
                "virt-pci does not change a hostdev the domain already has: remove it first with `virt-pci remove -i {} {}`, then run this add again; nothing was written",
                shell_word(&p.display().to_string()),
                list(present).replace(',', "")
            ));
        }
        _ => {
            if let Some(h) = e.help() {
                c = c.help(h);
            }
        }
    }
    c
}

/// `s` quoted for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `original`: whether a file was there before (only then can we say it
/// was left unchanged).
fn write_error(e: fsutil::WriteError, original: bool) -> CliError {
    let full = matches!(e.source.raw_os_error(), Some(28) | Some(122));
    let ro = matches!(e.source.raw_os_error(), Some(13) | Some(30) | Some(1));
    let kept = if original {
        "the original file was not changed"
    } else {
        "nothing was written"
    };
    let mut c = CliError::usage(e.to_string());
    if e.action == "keep a backup at" {
        c = c.help(format!(
            "choose another --backup suffix, or move the old backup away; {kept}"
        ));
    } else if e.action == "follow" {
        c = c.help(format!(
            "write to the link's target itself if you trust it, or to another path; {kept}"
        ));
    } else if full {
        c = c.help(format!("free some space on that filesystem; {kept}"));
    } else if ro {
        c = c.help(format!(
            "write somewhere writable with -o FILE, or run with the rights to edit it; {kept}"
        ));
    } else {
        c = c.help(kept);
    }
    c
}

/// Send the result where the options say.
pub(super) fn emit(
    ctx: &Context,
    out: &OutputArgs,
    input: &Input,
    edit: &Edit,
) -> Result<(), CliError> {
    if out.diff {
        let d = virt_pci::diff::unified(&input.text, &edit.text, &input.name, ctx.out.on);
        super::emit(&d);
        return Ok(());
    }
    if out.in_place {
        let Some(path) = &input.path else {
            return Err(CliError::usage("cannot edit stdin in place"));
        };
        // Unchanged: the caller already said so ("nothing to add; F is
        // unchanged"), and nothing is written.
        if edit.text != input.text {
            // The lock taken before reading (`read_input`) is still held.
            fsutil::write_atomic(path, edit.text.as_bytes(), out.backup.as_deref())
                .map_err(|e| write_error(e, true))?;
            eprintln!("wrote {}", input.name);
        }
        return Ok(());
    }
    if let Some(o) = &out.output {
        if o.as_os_str() == "-" {
            return print_stdout(&edit.text);
        }
        let original = std::fs::metadata(o).is_ok();
        fsutil::write_atomic(o, edit.text.as_bytes(), None)
            .map_err(|e| write_error(e, original))?;
        eprintln!("wrote {}", virt_pci::text::escape(&o.display().to_string()));
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

pub(super) fn run_add(ctx: &Context, args: AddArgs) -> CliResult {
    check_options_early(&args.hostdev)?;
    let (file, devices) = split_targets(&args.targets, &args.target, &args.out, true)?;
    let devices = devices.to_vec();
    let (session, input) = open_target(ctx, file.as_deref(), &args.target, &args.out)?;
    // Refuse a bad file before reading the host or printing a plan.
    let doc = domain::edit::parse_domain(&input.text).map_err(|e| edit_error(&input, e))?;
    // The plan is for the domain being edited, named or the file's own
    // <name> (as `validate` judges a file): its own use of a device is no
    // conflict, so a copy of a defined domain's XML is judged as the domain.
    let for_domain = args
        .target
        .domain
        .clone()
        .or_else(|| domain::domain_name(&doc));
    let (addrs, opts) = plan_hostdevs(
        ctx,
        &devices,
        &args.group,
        &args.hostdev,
        for_domain.as_deref(),
        true,
    )?;
    let mut edit = domain::edit::add_parsed(doc, &input.text, &addrs, &opts)
        .map_err(|e| edit_error(&input, e))?;
    if args.group.force && !edit.added.is_empty() {
        super::consent::record(ctx, &input.name, &mut edit, args.reason.as_deref())
            .map_err(|e| edit_error(&input, e))?;
    }
    if !edit.already_present.is_empty() {
        eprintln!("already in {}: {}", input.name, list(&edit.already_present));
    }
    if edit.added.is_empty() {
        eprintln!("nothing to add; {} is unchanged", input.name);
    } else {
        eprintln!("adding to {}: {}", input.name, list(&edit.added));
    }
    let live = || {
        edit.added
            .iter()
            .map(|a| domain::hostdev::render(&[*a], &opts, &Default::default()))
            .collect()
    };
    let to = Destination {
        session: session.as_ref(),
        out: &args.out,
        json: args.json,
    };
    to.finish(ctx, &input, &edit, live, Change::Attach)?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn run_remove(ctx: &Context, args: RemoveArgs) -> CliResult {
    let (file, devices) = split_targets(&args.targets, &args.target, &args.out, false)?;
    if args.all && !devices.is_empty() {
        return Err(CliError::usage(
            "--all removes every PCI hostdev; name no devices with it",
        ));
    }
    if !args.all && devices.is_empty() {
        return Err(CliError::usage("no device given").help("name the devices to remove, or --all"));
    }
    let devices = devices.to_vec();
    let (session, input) = open_target(ctx, file.as_deref(), &args.target, &args.out)?;
    domain::edit::parse_domain(&input.text).map_err(|e| edit_error(&input, e))?;
    let sel = if args.all {
        Selection::All
    } else {
        let specs = parse_specs(&devices)?;
        let mut resolved = Vec::new();
        for s in specs {
            match s {
                // vendor:device ids name devices of a host; read it.
                // (The invocation knew: `remove` declares it reads a host.)
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
    let mut edit = domain::edit::remove(&input.text, &sel).map_err(|e| edit_error(&input, e))?;
    super::consent::forget(&input.name, &mut edit).map_err(|e| edit_error(&input, e))?;
    let kept: Vec<virt_pci::PciAddress> = domain::parse(&edit.text)
        .map(|d| {
            domain::pci_hostdevs(&d)
                .iter()
                .filter(|h| !h.interface)
                .filter_map(|h| h.address)
                .collect()
        })
        .unwrap_or_default();
    let host = match ctx.inv.host {
        virt_pci::invocation::HostSource::None => None,
        _ => Some(ctx.host()?),
    };
    for w in virt_pci::plan::removal_warnings(host.as_ref(), &edit.removed, &kept) {
        eprintln!(
            "{}{} {}",
            ctx.err.yellow("warning"),
            ctx.err.bold(":"),
            w.message
        );
    }
    if edit.text == input.text {
        eprintln!("{} has no PCI hostdevs; nothing removed", input.name);
    } else {
        eprintln!("removing from {}: {}", input.name, list(&edit.removed));
    }
    let live = || {
        edit.removed
            .iter()
            .map(|a| {
                format!(
                    "<hostdev mode='subsystem' type='pci'><source><address {}/></source></hostdev>",
                    a.libvirt_attrs('\'')
                )
            })
            .collect()
    };
    let to = Destination {
        session: session.as_ref(),
        out: &args.out,
        json: args.json,
    };
    to.finish(ctx, &input, &edit, live, Change::Detach)?;
    Ok(ExitCode::SUCCESS)
}

/// Where an edit goes: the domain (redefined, unless --diff or -o asks for
/// the text), else the output options; with --json, the change as data on
/// stdout ([`virt_pci::domain::edit::Edit::report`]).
struct Destination<'a> {
    session: Option<&'a DomainSession>,
    out: &'a OutputArgs,
    json: bool,
}

impl Destination<'_> {
    /// `live`: the `<hostdev>` elements to hot-plug or unplug with --live.
    fn finish(
        &self,
        ctx: &Context,
        input: &Input,
        edit: &Edit,
        live: impl FnOnce() -> Vec<String>,
        change: Change,
    ) -> Result<(), CliError> {
        let out = self.out;
        match self.session {
            Some(s) if !out.diff && out.output.is_none() => {
                let defined = s.commit(ctx, input, edit, &live(), change)?;
                if !self.json {
                    return Ok(());
                }
                // What libvirt keeps, read back: the definition is the truth.
                let after = if defined { Some(s.input()?.text) } else { None };
                report(input, edit, after.as_deref(), defined)
            }
            _ if self.json => {
                if out.output.as_deref() == Some(Path::new("-")) {
                    return Err(CliError::usage(
                        "--json prints the change on stdout; -o - would print the XML there too",
                    )
                    .help("give -o FILE, or drop -o"));
                }
                let write = !out.diff && (out.in_place || out.output.is_some());
                if write {
                    emit(ctx, out, input, edit)?;
                }
                let written = write && (out.output.is_some() || edit.text != input.text);
                report(input, edit, None, written)
            }
            _ => emit(ctx, out, input, edit),
        }
    }
}

fn report(input: &Input, edit: &Edit, after: Option<&str>, written: bool) -> Result<(), CliError> {
    super::print_json(&edit.report(&input.name, &input.text, after, written)).map(|_| ())
}
