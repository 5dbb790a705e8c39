//! `virt-pci guard` (what libvirt's hook runs) and `virt-pci hook
//! install|uninstall|status`. Arguments and printing only: the checks are
//! `virt_pci::guard`, the file handling `virt_pci::guard::hook`.

use super::{CliError, CliResult, Context};
use clap::{Args as ClapArgs, Subcommand};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use virt_pci::diagnostic::Located;
use virt_pci::guard::{self, hook, GuardError, Verdict};

const GUARD_AFTER: &str = "\
What it refuses (on `prepare begin`; every other operation exits 0 at once):
  host-critical    a hostdev is the root disk's controller, the default-route NIC,
                   the boot VGA or the ISA bridge (consent rule: root-filesystem,
                   default-route, boot-vga, isa-bridge, or host-critical for any)
  group-not-viable an endpoint of a hostdev's IOMMU group is not in the domain and
                   not on vfio-pci, pci-stub or no driver (consent rule: group-not-viable)
  not-endpoint, host-bridge   a bridge, root port or the host bridge as hostdev
  in-use           a hostdev or a member of its group is held by another running domain
  not-detached     a managed='no' hostdev is not on vfio-pci (fix: virt-pci prepare DOMAIN)

Consent, in the domain's <metadata> (`virt-pci add --force` writes it):
  <virt-pci:consent xmlns:virt-pci='urn:virt-pci:consent:1'>
    <virt-pci:allow device='0000:2b:00.0' rule='boot-vga' reason='single-GPU passthrough'/>
  </virt-pci:consent>

Try it by hand: virsh dumpxml NAME | virt-pci guard NAME prepare begin -";

/// Arguments as libvirt passes them to a hook.
#[derive(ClapArgs, Debug)]
#[command(after_long_help = GUARD_AFTER)]
pub(super) struct GuardArgs {
    /// The domain's name.
    domain: String,
    /// The hook operation (prepare, start, started, stopped, release, migrate, restore, reconnect, attach).
    operation: String,
    /// begin or end (`-` when none).
    sub_op: String,
    /// libvirt's extra argument (`-` when none); ignored.
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    extra: Vec<String>,
}

pub(super) fn run_guard(ctx: &Context, a: GuardArgs) -> CliResult {
    if !guard::applies(&a.operation, &a.sub_op) {
        return Ok(ExitCode::SUCCESS);
    }
    let t0 = std::time::Instant::now();
    let mut buf = Vec::new();
    std::io::stdin()
        .take(guard::MAX_INPUT as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| guard_input(format!("cannot read the domain XML on stdin: {e}")))?;
    if buf.len() > guard::MAX_INPUT {
        return Err(guard_input(format!(
            "the domain XML on stdin is larger than {} MiB",
            guard::MAX_INPUT >> 20
        )));
    }
    let text = String::from_utf8(buf).map_err(|e| {
        guard_input(format!(
            "the domain XML on stdin is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let root = ctx
        .global
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let verdict = guard::check(&root, &a.domain, &text).map_err(|e| match e {
        GuardError::Input {
            message,
            line,
            column,
        } => guard_input(format!("cannot judge domain '{}': {message}", a.domain))
            .in_file(Located::at("<stdin>", &text, line, column)),
        GuardError::Host(m) => CliError::usage(format!(
            "virt-pci guard: cannot read this host's PCI devices: {m}"
        ))
        .help("the start was stopped because its devices could not be checked; `virt-pci hook uninstall` removes the guard"),
    })?;
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    let name = &a.domain;
    match verdict {
        Verdict::NoHostdevs => {
            eprintln!("virt-pci guard: '{name}' has no PCI hostdev; nothing to check ({ms:.2} ms)");
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Pass {
            hostdevs,
            groups,
            consented,
        } => {
            for c in &consented {
                eprintln!(
                    "virt-pci guard: '{name}': allowed by consent ({} for {}, reason: {}): {}",
                    c.entry.rule,
                    c.entry.device_text,
                    c.entry.reason.as_deref().unwrap_or("none given"),
                    c.refusal.message
                );
            }
            eprintln!(
                "virt-pci guard: '{name}': {hostdevs} PCI hostdev{} in {groups} IOMMU group{} checked: ok ({ms:.2} ms)",
                if hostdevs == 1 { "" } else { "s" },
                if groups == 1 { "" } else { "s" },
            );
            Ok(ExitCode::SUCCESS)
        }
        Verdict::Refuse {
            refusals,
            consented,
        } => {
            eprint!("{}", guard::render(name, &refusals, &consented));
            eprintln!("(checked by virt-pci guard in {ms:.2} ms; `virt-pci hook uninstall` removes the guard)");
            Ok(ExitCode::from(1))
        }
    }
}

fn guard_input(m: String) -> CliError {
    CliError::usage(format!("virt-pci guard: {m}")).help(
        "libvirt sends the domain as it formats it; to run the guard by hand: `virsh dumpxml NAME | virt-pci guard NAME prepare begin -`",
    )
}

#[derive(ClapArgs, Debug)]
pub(super) struct HookArgs {
    #[command(subcommand)]
    action: HookAction,
}

#[derive(ClapArgs, Debug, Clone)]
struct ReloadArgs {
    /// Reload the daemon (SIGHUP to libvirtd/virtqemud) after the change; the default without --root.
    #[arg(long, conflicts_with = "no_reload")]
    reload: bool,
    /// Only say how to reload; the default with --root.
    #[arg(long)]
    no_reload: bool,
}

#[derive(Subcommand, Debug)]
enum HookAction {
    /// Install the guard as /etc/libvirt/hooks/qemu.d/virt-pci-guard (idempotent).
    Install {
        /// The virt-pci binary the hook runs (default: this one).
        #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
        binary: Option<PathBuf>,
        #[command(flatten)]
        reload: ReloadArgs,
    },
    /// Remove the guard's hook (only ours; other hooks stay).
    Uninstall {
        #[command(flatten)]
        reload: ReloadArgs,
    },
    /// Is the guard installed and current, which binary does it run? (exit 0 only then)
    Status {
        /// The binary an up-to-date hook runs (default: this one).
        #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
        binary: Option<PathBuf>,
    },
}

/// This binary, or the lean `virt-pci` next to the libvirt companion.
fn default_binary() -> Result<PathBuf, CliError> {
    let me = std::env::current_exe()
        .map_err(|e| CliError::usage(format!("cannot find this program's path: {e}")))?;
    if me
        .file_name()
        .is_some_and(|n| n == super::companion::COMPANION)
    {
        let lean = me.with_file_name("virt-pci");
        if lean.is_file() {
            return Ok(lean);
        }
    }
    Ok(me)
}

fn hook_error(e: hook::HookError) -> CliError {
    let c = CliError::usage(e.to_string());
    match e {
        hook::HookError::Foreign(_) => c.code(1).help(format!(
            "virt-pci only manages its own file; move that one to another name in {}/ if it should stay",
            "qemu.d"
        )),
        hook::HookError::BadBinary(_) => c.help("pass --binary /usr/bin/virt-pci"),
        hook::HookError::Io { .. } => c.help("run as root (the hooks live in /etc/libvirt), or pass --root DIR"),
    }
}

pub(super) fn run_hook(ctx: &Context, a: HookArgs) -> CliResult {
    let root = ctx
        .global
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/"));
    let fake = ctx.global.root.is_some();
    let path = hook::path(&root);
    match a.action {
        HookAction::Install { binary, reload } => {
            let bin = match binary {
                Some(b) => b,
                None => default_binary()?,
            };
            let change = hook::install(&root, &bin).map_err(hook_error)?;
            match change {
                hook::Change::Unchanged => {
                    eprintln!(
                        "{} is installed and up to date (runs {})",
                        path.display(),
                        bin.display()
                    )
                }
                hook::Change::Updated => {
                    eprintln!("updated {} (runs {})", path.display(), bin.display())
                }
                _ => eprintln!("installed {} (runs {})", path.display(), bin.display()),
            }
            if !bin.is_file() {
                eprintln!(
                    "{}{} {} does not exist (yet): until it does, the hook lets every start through and says so in libvirt's log",
                    ctx.err.yellow("warning"),
                    ctx.err.bold(":"),
                    bin.display()
                );
            }
            finish(ctx, &root, fake, &change, &reload)
        }
        HookAction::Uninstall { reload } => {
            let change = hook::uninstall(&root).map_err(hook_error)?;
            if change == hook::Change::Removed {
                eprintln!("removed {}", path.display());
            } else {
                eprintln!("{} is not installed; nothing to remove", path.display());
            }
            finish(ctx, &root, fake, &change, &reload)
        }
        HookAction::Status { binary } => hook_status(&root, &path, binary),
    }
}

/// `hook status`: the hook file's state, the binary it runs, and whether
/// the running daemons have read it; 1 unless starts are checked.
fn hook_status(root: &Path, path: &Path, binary: Option<PathBuf>) -> CliResult {
    let bin = match binary {
        Some(b) => b,
        None => default_binary()?,
    };
    let st = hook::state(root, &bin).map_err(hook_error)?;
    outln!("hook: {}", path.display());
    let ok = match &st {
        hook::State::Absent => {
            outln!("state: not installed (`virt-pci hook install` installs it)");
            false
        }
        hook::State::Foreign => {
            outln!("state: a file virt-pci did not write is at that path");
            false
        }
        hook::State::Current { binary } => {
            outln!(
                "state: installed, runs {}{}",
                binary.display(),
                if binary.is_file() {
                    ""
                } else {
                    " (missing: starts are NOT checked)"
                }
            );
            binary.is_file()
        }
        hook::State::Outdated { binary } => {
            outln!(
                "state: installed but outdated (runs {}); `virt-pci hook install` updates it",
                binary
                    .as_deref()
                    .map_or("?".into(), |b| b.display().to_string())
            );
            false
        }
    };
    let daemons = hook::running_daemons(root);
    if daemons.is_empty() {
        outln!("daemon: no running libvirtd or virtqemud (hooks are read when it starts)");
    }
    for d in &daemons {
        match hook::newer_than_daemon(root, d) {
            // A reload (SIGHUP) leaves no trace to compare with:
            // only say what to do if it did not happen.
            Some(true) => outln!(
                "daemon: {} (pid {}), started before the hook was written: it runs the hook only if it was reloaded since (`virt-pci hook install --reload`, `systemctl reload {}` or `kill -HUP {}`)",
                d.name, d.pid, d.name, d.pid
            ),
            _ => outln!("daemon: {} (pid {})", d.name, d.pid),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reload the daemons, or say how.
fn finish(
    ctx: &Context,
    root: &Path,
    fake: bool,
    change: &hook::Change,
    r: &ReloadArgs,
) -> CliResult {
    if !change.needs_reload() && !r.reload {
        return Ok(ExitCode::SUCCESS);
    }
    let daemons = hook::running_daemons(root);
    let reload = r.reload || (!fake && !r.no_reload);
    if daemons.is_empty() {
        eprintln!("no running libvirtd or virtqemud found; the change takes effect when it starts");
        return Ok(ExitCode::SUCCESS);
    }
    for d in &daemons {
        if !reload {
            eprintln!(
                "{}{} libvirt reads hooks at start and on SIGHUP only: reload {} (`systemctl reload {}` or `kill -HUP {}`)",
                ctx.err.cyan("note"),
                ctx.err.bold(":"),
                d.name,
                d.name,
                d.pid
            );
            continue;
        }
        let st = std::process::Command::new("kill")
            .args(["-HUP", &d.pid.to_string()])
            .status()
            .map_err(|e| CliError::usage(format!("cannot run kill: {e}")))?;
        if !st.success() {
            return Err(CliError::new(format!(
                "could not send SIGHUP to {} (pid {})",
                d.name, d.pid
            ))
            .help(format!("reload it yourself: `systemctl reload {}`", d.name)));
        }
        eprintln!("reloaded {} (pid {}): the change is active", d.name, d.pid);
    }
    Ok(ExitCode::SUCCESS)
}
