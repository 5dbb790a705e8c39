//! Shell completion: `virt-pci completions SHELL` and the completer it calls.
//!
//! Why dynamic: the scripts clap_complete generates ahead of time complete
//! nothing after the subcommand name in bash when the binary's name has a
//! hyphen (the `case` arms never match; upstream clap-rs/clap#6421), and a
//! static script cannot know the devices of a host or the domains of a
//! connection. So the script `completions SHELL` prints is clap_complete's
//! registration for *dynamic* completion: at each Tab the shell runs
//! `VIRT_PCI_COMPLETE=SHELL virt-pci -- WORDS...` and clap's engine answers
//! from the same `clap::Command` that parses the arguments, so subcommands,
//! options and their values can never drift from the parser.
//!
//! What is completed beyond clap's own knowledge (wired here, in one place,
//! by argument id, so the argument structs stay about parsing):
//! - device addresses (`show`, `snippet`, `add`, `remove`, `detach`, ...)
//!   from the host the command would read: the `--snapshot`, `--root` or
//!   `-c` on the line (or this machine). They come from `virt-pci list
//!   --json` run with exactly those options, so the host is read the same
//!   way as by the command itself (libvirt through the companion);
//! - domain names (`--domain`, `prepare`, `release`) when a connection is
//!   named (`-c` or `LIBVIRT_DEFAULT_URI`), from the hidden
//!   `complete-domains` command (through the companion); without one, no
//!   daemon is contacted and domain XML files are offered instead;
//! - snapshot files (`--snapshot`): directories and `*.json`.

use super::{CliError, CliResult, Context};
use clap::Args as ClapArgs;
use clap_complete::engine::{
    ArgValueCompleter, CompletionCandidate, PathCompleter, ValueCompleter,
};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command as Process, ExitCode, Stdio};

/// The environment variable that turns a run into a completion request.
const VAR: &str = "VIRT_PCI_COMPLETE";

#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ShellName {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(ClapArgs, Debug)]
pub(super) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: ShellName,
}

/// Answer a completion request (`VIRT_PCI_COMPLETE=SHELL virt-pci -- ...`)
/// and exit; return at once otherwise. Called first thing in `main`.
pub(super) fn complete_if_asked(factory: fn() -> clap::Command) {
    let _ = FACTORY.set(factory);
    clap_complete::CompleteEnv::with_factory(move || with_completers(factory()))
        .var(VAR)
        .complete();
}

/// The parser, for reading the words already typed (see `typed_targets`).
static FACTORY: std::sync::OnceLock<fn() -> clap::Command> = std::sync::OnceLock::new();

/// The name the completion scripts call: as this binary was invoked (a bare
/// `virt-pci` when found on PATH, as installed), else its absolute path.
fn completer_name() -> String {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let p = Path::new(&arg0);
    if p.components().count() > 1 {
        if let Ok(abs) = std::path::absolute(p) {
            return abs.to_string_lossy().into_owned();
        }
    }
    p.to_string_lossy().into_owned()
}

/// `virt-pci completions SHELL`: the registration script for that shell.
pub(super) fn completions(a: CompletionsArgs) -> CliResult {
    use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
    let shell: &dyn EnvCompleter = match a.shell {
        ShellName::Bash => &Bash,
        ShellName::Zsh => &Zsh,
        ShellName::Fish => &Fish,
        ShellName::Elvish => &Elvish,
        ShellName::Powershell => &Powershell,
    };
    let mut buf = Vec::new();
    shell
        .write_registration(VAR, "virt-pci", "virt-pci", &completer_name(), &mut buf)
        .map_err(|e| CliError::usage(format!("cannot write the completion script: {e}")))?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if a.shell == ShellName::Zsh {
        text = zsh_autoload(&text);
    }
    super::emit(&text);
    Ok(ExitCode::SUCCESS)
}

/// clap's zsh script ends with `compdef FUNC virt-pci`: right when sourced,
/// but as an autoloaded `_virt-pci` from `$fpath` (where packages install
/// it) the first Tab would only register and complete nothing. Complete
/// when called as `_virt-pci`, register when sourced.
fn zsh_autoload(script: &str) -> String {
    const REG: &str = "compdef _clap_dynamic_completer_virt_pci virt-pci";
    script.replace(
        REG,
        "if [ \"$funcstack[1]\" = \"_virt-pci\" ]; then\n    _clap_dynamic_completer_virt_pci \"$@\"\nelse\n    compdef _clap_dynamic_completer_virt_pci virt-pci\nfi",
    )
}

/// The command with the completers attached to its arguments.
fn with_completers(cmd: clap::Command) -> clap::Command {
    let devices = || ArgValueCompleter::new(devices_completer);
    let mut cmd = cmd.mut_arg("snapshot", |a| {
        a.add(ArgValueCompleter::new(snapshot_files()))
    });
    for (sub, arg) in [
        ("show", "devices"),
        ("snippet", "devices"),
        ("detach", "devices"),
        ("reattach", "devices"),
        ("reset", "devices"),
        ("check", "device"),
        ("doctor", "devices"),
    ] {
        cmd = cmd.mut_subcommand(sub, |s| s.mut_arg(arg, |a| a.add(devices())));
    }
    for sub in ["add", "remove"] {
        cmd = cmd.mut_subcommand(sub, |s| {
            s.mut_arg("targets", |a| {
                a.add(ArgValueCompleter::new(FileThenDevices))
            })
            .mut_arg("domain", |a| {
                a.add(ArgValueCompleter::new(domains_completer))
            })
        });
    }
    cmd = cmd.mut_subcommand("validate", |s| {
        s.mut_arg("domains", |a| {
            a.add(ArgValueCompleter::new(domains_completer))
        })
    });
    for sub in ["prepare", "release"] {
        cmd = cmd.mut_subcommand(sub, |s| {
            s.mut_arg("domain", |a| {
                a.add(ArgValueCompleter::new(domain_or_file_completer))
            })
        });
    }
    cmd
}

fn snapshot_files() -> PathCompleter {
    PathCompleter::any()
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "json"))
        .stdio()
}

fn xml_files() -> PathCompleter {
    PathCompleter::any()
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "xml"))
        .stdio()
}

/// The words of the command line being completed (after the `--` the
/// completion scripts put before them), without the program name.
fn line() -> Vec<OsString> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let start = args
        .iter()
        .position(|a| a == "--")
        .map_or(args.len(), |i| i + 2);
    args.get(start..).map(<[_]>::to_vec).unwrap_or_default()
}

/// The options on `line` that choose the host (and the names), as
/// `--opt VALUE` pairs to pass on. The word being completed (the last one)
/// is not a value yet.
fn host_options(line: &[OsString]) -> Vec<OsString> {
    const OPTS: [&str; 5] = ["--snapshot", "--root", "-c", "--connect", "--pci-ids"];
    let typed = &line[..line.len().saturating_sub(1)];
    let mut out = Vec::new();
    let mut i = 0;
    while i < typed.len() {
        let w = typed[i].to_string_lossy();
        if w == "--" {
            break;
        }
        if let Some(o) = OPTS.iter().find(|o| **o == w) {
            if let Some(v) = typed.get(i + 1) {
                out.push(OsString::from(*o));
                out.push(v.clone());
            }
            i += 2;
            continue;
        }
        if let Some((o, v)) = w.split_once('=') {
            if OPTS.contains(&o) && o.starts_with("--") {
                out.push(OsString::from(o));
                out.push(OsString::from(v));
            }
        } else if let Some(v) = w
            .strip_prefix("-c")
            .filter(|v| !v.is_empty() && !w.starts_with("--"))
        {
            out.push(OsString::from("-c"));
            out.push(OsString::from(v));
        }
        i += 1;
    }
    out
}

fn has_option(opts: &[OsString], names: &[&str]) -> bool {
    opts.iter()
        .step_by(2)
        .any(|o| names.iter().any(|n| o == *n))
}

/// Run this binary with `args` for completion data: stdout, or nothing on
/// any failure (a completion never prints errors into the command line).
fn run_self(args: &[OsString]) -> Option<String> {
    let me = std::env::current_exe().ok()?;
    let out = Process::new(me)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove(VAR)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Device addresses of the host the line names, matching what is typed:
/// `0000:01:00.0` for a full address, else the short `01:00.0` (the domain
/// 0000 left out, as users type it). Help: the device's class and name.
fn devices_completer(current: &OsStr) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let mut args = host_options(&line());
    args.extend(["list", "--json"].map(OsString::from));
    let Some(json) = run_self(&args) else {
        return Vec::new();
    };
    device_candidates(&json, &current)
}

fn device_candidates(list_json: &str, current: &str) -> Vec<CompletionCandidate> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(list_json) else {
        return Vec::new();
    };
    let Some(devices) = v.get("devices").and_then(|d| d.as_array()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in devices {
        let Some(addr) = d.get("address").and_then(|a| a.as_str()) else {
            continue;
        };
        // The short form when it matches what is typed, else the full one.
        let shown = match addr.strip_prefix("0000:") {
            Some(short) if short.starts_with(current) => short,
            _ if addr.starts_with(current) => addr,
            _ => continue,
        };
        let text = |k: &str| d.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let name = [text("class_name"), text("device_name")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let c = CompletionCandidate::new(shown);
        out.push(if name.is_empty() {
            c
        } else {
            c.help(Some(name.into()))
        });
    }
    out
}

/// Domain names of the connection the line names (`-c`, else
/// `LIBVIRT_DEFAULT_URI`); nothing when none is named.
fn domain_names(current: &str) -> Option<Vec<CompletionCandidate>> {
    let mut args = host_options(&line());
    let named = has_option(&args, &["-c", "--connect"])
        || std::env::var_os("LIBVIRT_DEFAULT_URI").is_some_and(|v| !v.is_empty());
    if !named {
        return None;
    }
    // The domains are the connection's, not a snapshot's or a fake root's.
    let mut only_uri = Vec::new();
    for pair in args.chunks(2) {
        if has_option(pair, &["-c", "--connect"]) {
            only_uri.extend_from_slice(pair);
        }
    }
    args = only_uri;
    args.push(OsString::from("complete-domains"));
    let names = run_self(&args)?;
    Some(
        names
            .lines()
            .filter(|n| n.starts_with(current))
            .map(CompletionCandidate::new)
            .collect(),
    )
}

fn domains_completer(current: &OsStr) -> Vec<CompletionCandidate> {
    domain_names(&current.to_string_lossy()).unwrap_or_default()
}

/// `prepare`/`release` take a domain name (with a connection) or a file.
fn domain_or_file_completer(current: &OsStr) -> Vec<CompletionCandidate> {
    domain_names(&current.to_string_lossy()).unwrap_or_else(|| xml_files().complete(current))
}

/// `add`/`remove FILE DEVICE...`: a domain file first, then devices; with
/// `--domain` on the line, devices only.
struct FileThenDevices;

impl ValueCompleter for FileThenDevices {
    fn complete(&self, current: &OsStr) -> Vec<CompletionCandidate> {
        self.complete_at(0, current)
    }

    fn complete_at(&self, _arg_index: usize, current: &OsStr) -> Vec<CompletionCandidate> {
        // clap's index counts from the last option, so ask the parser how
        // many targets the words before the cursor hold.
        let (typed, by_name) = typed_targets();
        if typed == 0 && !by_name {
            xml_files().complete(current)
        } else {
            devices_completer(current)
        }
    }
}

/// For `add`/`remove`: how many FILE/DEVICE words are typed before the
/// cursor, and whether `--domain` is given (then there is no FILE).
fn typed_targets() -> (usize, bool) {
    let Some(factory) = FACTORY.get() else {
        return (0, false);
    };
    let mut words = line();
    words.pop();
    words.insert(0, OsString::from("virt-pci"));
    let Ok(m) = factory().ignore_errors(true).try_get_matches_from(words) else {
        return (0, false);
    };
    let Some((_, sub)) = m.subcommand() else {
        return (0, false);
    };
    let n = sub
        .try_get_many::<String>("targets")
        .ok()
        .flatten()
        .map_or(0, Iterator::count);
    let by_name = sub.try_get_one::<String>("domain").ok().flatten().is_some();
    (n, by_name)
}

/// Hidden `virt-pci complete-domains`: the connection's domain names, one a
/// line (for the completer above; needs libvirt, so it runs in the companion).
pub(super) fn run_domains(ctx: &Context) -> CliResult {
    let conn = ctx.libvirt(ctx.global.connect.as_deref(), true)?;
    let mut out = String::new();
    for d in conn.domains().map_err(super::libvirt_error)? {
        out.push_str(&d.name);
        out.push('\n');
    }
    super::emit(&out);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn host_options_are_taken_from_the_line_in_every_spelling() {
        let l = os(&[
            "--snapshot",
            "h.json",
            "show",
            "--root=/r",
            "-cqemu:///system",
            "--pci-ids",
            "p",
            "01",
        ]);
        assert_eq!(
            host_options(&l),
            os(&[
                "--snapshot",
                "h.json",
                "--root",
                "/r",
                "-c",
                "qemu:///system",
                "--pci-ids",
                "p"
            ])
        );
        // The word under the cursor is not a value.
        assert_eq!(
            host_options(&os(&["show", "--snapshot"])),
            Vec::<OsString>::new()
        );
    }

    #[test]
    fn the_zsh_script_completes_when_autoloaded() {
        use clap_complete::env::{EnvCompleter, Zsh};
        let mut buf = Vec::new();
        Zsh.write_registration(VAR, "virt-pci", "virt-pci", "virt-pci", &mut buf)
            .unwrap();
        let text = zsh_autoload(&String::from_utf8(buf).unwrap());
        // clap's last line was found and replaced (a clap upgrade that
        // changes it fails here, not silently on the first Tab).
        assert!(
            text.contains("if [ \"$funcstack[1]\" = \"_virt-pci\" ]; then"),
            "{text}"
        );
        assert_eq!(
            text.matches("compdef _clap_dynamic_completer_virt_pci virt-pci")
                .count(),
            1
        );
    }

    #[test]
    fn devices_are_offered_short_unless_typed_in_full() {
        let json = r#"{"devices":[
            {"address":"0000:01:00.0","class_name":"VGA compatible controller","device_name":"GM206"},
            {"address":"0000:01:00.1","class_name":"Audio device","device_name":""},
            {"address":"10000:e1:00.0"}]}"#;
        let vals = |cur: &str| -> Vec<String> {
            device_candidates(json, cur)
                .iter()
                .map(|c| c.get_value().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(vals("01:00"), ["01:00.0", "01:00.1"]);
        assert_eq!(vals(""), ["01:00.0", "01:00.1", "10000:e1:00.0"]);
        assert_eq!(vals("0000:01:00.1"), ["0000:01:00.1"]);
        assert_eq!(vals("10000:"), ["10000:e1:00.0"]);
        assert_eq!(vals("02"), Vec::<String>::new());
        let help = device_candidates(json, "01:00.0")[0]
            .get_help()
            .map(|h| h.to_string());
        assert_eq!(help.as_deref(), Some("VGA compatible controller: GM206"));
    }
}
