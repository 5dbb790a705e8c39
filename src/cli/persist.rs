//! `detach --persist` / `reattach --persist`: printing and running a
//! `virt_pci::persist` plan. The refusals are `detach`'s own.

use super::actions::{refused_error, DeviceActionArgs};
use super::{parse_specs, print_json, read_sysfs, CliError, CliResult, Context};
use clap::Args as ClapArgs;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use virt_pci::actions::{self, sysfs::SysfsBackend, ActionOptions};
use virt_pci::invocation::Backend;
use virt_pci::persist::{self, PersistPlan};

#[derive(ClapArgs, Debug, Clone)]
pub(super) struct PersistOpts {
    /// Bind at boot instead of now (detach) / stop binding at boot (reattach):
    /// writes a udev rule, modprobe.d and modules-load.d files and an initramfs
    /// hook under the root, per address. Takes effect at the next boot.
    #[arg(long)]
    pub(super) persist: bool,
    /// With --persist: rebuild the initramfs (`update-initramfs -u` or `dracut -f`) when it changes.
    #[arg(long, requires = "persist")]
    update_initramfs: bool,
}

#[derive(Serialize)]
struct JsonRun<'a> {
    plan: &'a PersistPlan,
    dry_run: bool,
    applied: bool,
}

/// The root the files go under: the invocation's sysfs backend (`--root`
/// or `/`; app.rs gives --persist the sysfs backend, which already refuses
/// a typed `-c`). A snapshot is not a host.
fn root_for(ctx: &Context) -> Result<PathBuf, CliError> {
    match &ctx.inv.backend {
        Backend::Sysfs {
            root,
            execute: true,
        } => Ok(root.clone()),
        _ => Err(CliError::usage(
            "--persist writes files on a host; a snapshot is a file, not a host",
        )
        .help("run it on the host itself, or give --root DIR (a tree with sys/ and etc/)")),
    }
}

pub(super) fn run(ctx: &Context, a: &DeviceActionArgs, p: &PersistOpts, add: bool) -> CliResult {
    let act = &a.act;
    let root = root_for(ctx)?;
    if p.update_initramfs && root.as_path() != std::path::Path::new("/") && !act.dry_run {
        return Err(CliError::usage(format!(
            "--update-initramfs rebuilds this machine's initramfs, but the files go under {}",
            root.display()
        ))
        .help(format!(
            "rebuild inside that system: `chroot {} update-initramfs -u` (or dracut -f)",
            root.display()
        )));
    }
    let host = read_sysfs(&root)?;
    let specs = parse_specs(&a.devices)?;
    let req = host.resolve_all(&specs)?;
    let opts = ActionOptions {
        strict_group: !a.no_strict_group,
        force: act.force,
        driver: "vfio".into(),
    };
    let backend = SysfsBackend::new(&root);
    let ap = if add {
        actions::detach_plan(&host, &req, &opts, &backend)
    } else {
        actions::reattach_plan(&host, &req, &opts, &backend)
    };
    let verb = if add {
        "detach --persist"
    } else {
        "reattach --persist"
    };
    let plan = persist::plan(&root, &host, &ap, add, p.update_initramfs).map_err(persist_error)?;
    // The plan, as JSON or in words; `applied` once the files are written.
    let show = |applied: bool| -> Result<(), CliError> {
        if act.json {
            print_json(&JsonRun {
                plan: &plan,
                dry_run: act.dry_run,
                applied,
            })?;
        } else {
            print_plan(ctx, &plan, verb);
        }
        Ok(())
    };
    if plan.is_refused() {
        show(false)?;
        // The same refusal `detach` prints, on the same plan.
        let mut shown = ap.clone();
        shown.refusals = plan.refusals.clone();
        return Err(refused_error(&shown, verb));
    }
    if act.dry_run || plan.is_noop() {
        show(false)?;
        return Ok(ExitCode::SUCCESS);
    }
    persist::apply(&plan).map_err(persist_error)?;
    // Not a dry run here: `dry_run` is false in the JSON.
    show(true)?;
    if !act.json {
        for f in &plan.files {
            let w = if f.op == "write" { "wrote" } else { "removed" };
            outln!("{} {w} {}", ctx.out.green("done"), f.path);
        }
    }
    if plan.initramfs_rebuild_needed && p.update_initramfs {
        for c in &plan.commands {
            let mut words = c.split_whitespace();
            let prog = words.next().unwrap_or_default();
            let st = std::process::Command::new(prog)
                .args(words)
                .status()
                .map_err(|e| {
                    CliError::new(format!("cannot run `{c}`: {e}")).help(
                        "the boot-time binding files are written; rebuild the initramfs by hand",
                    )
                })?;
            if !st.success() {
                return Err(CliError::new(format!("`{c}` failed ({st})")).help("the boot-time binding files are written; fix the initramfs tool's error and run it again"));
            }
            if !act.json {
                outln!("{} ran {c}", ctx.out.green("done"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn persist_error(e: persist::PersistError) -> CliError {
    let mut c = CliError::new(e.message);
    c.location = e.location;
    c.help = e.help;
    c
}

fn print_plan(ctx: &Context, p: &PersistPlan, verb: &str) {
    let s = &ctx.out;
    let list = |v: &[virt_pci::PciAddress]| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    outln!(
        "{} {}: bound to vfio-pci at boot, before: {}; after: {}",
        s.bold(verb),
        list(&p.requested),
        list(&p.before),
        list(&p.after)
    );
    if p.files.is_empty() {
        outln!("  nothing to change under {}", p.root);
    }
    for f in &p.files {
        match (&f.content, &f.mode) {
            (Some(c), Some(m)) => {
                outln!("  write {} (mode {m}):", s.bold(&f.path));
                for l in c.lines() {
                    outln!("    {}", s.dim(l));
                }
            }
            _ => outln!("  remove {}", s.bold(&f.path)),
        }
    }
    if p.root != "/" && !p.files.is_empty() {
        outln!("  (paths under --root {})", p.root);
    }
    if p.initramfs_rebuild_needed {
        for c in &p.commands {
            outln!(
                "  {}: the initramfs must be rebuilt for this to reach drivers loaded from it: `{c}` (--update-initramfs runs it)",
                s.yellow("initramfs")
            );
        }
    }
    for w in &p.warnings {
        outln!("  {}: {}", s.yellow("warning"), w.message);
        if let Some(h) = &w.help {
            outln!("    {}: {h}", s.cyan("help"));
        }
    }
    if !p.files.is_empty() && !p.is_refused() {
        let now = if verb.starts_with("detach") {
            "virt-pci detach"
        } else {
            "virt-pci reattach"
        };
        outln!(
            "  takes effect at the next boot; nothing is unbound now (`{now} {}` acts now)",
            list(&p.requested)
        );
    }
}
