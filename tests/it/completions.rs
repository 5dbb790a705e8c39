//! Shell completion in the real shells: `virt-pci completions bash` sourced
//! into bash, the completion function called as bash calls it on Tab
//! (COMP_WORDS/COMP_CWORD), and COMPREPLY compared; fish's own
//! `complete --do-complete`; zsh and fish parse the scripts (`-n`). Also the
//! man pages, and both commands on a closed pipe. Hosts come from
//! `--snapshot samples/hosts/...` on the completed line: nothing reads this
//! machine's devices.
//!
//! bash, zsh and fish are installed by `make deps` (scripts/install-deps.sh).

use crate::setup::repo;
use std::path::PathBuf;
use std::process::Command;

const S001: &str = "samples/hosts/001-asrock-z170-gaming-itx-gtx960.json";

/// For the shells, which run the binary themselves with the words they are given.
fn exe() -> PathBuf {
    crate::run::bin_path()
}

fn need(shell: &str) {
    let ok = Command::new(shell)
        .arg("-c")
        .arg("true")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{shell} is not installed: run `make deps` as root");
}

/// What bash completes for `words` (the last one is under the cursor).
fn bash_complete(words: &[&str]) -> Vec<String> {
    need("bash");
    let script = r#"
set -u
source <("$VP" completions bash)
read -r -a COMP_WORDS <<< "$WORDS"
[ "${LAST_EMPTY:-}" = 1 ] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="$WORDS"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9
# The function bash itself would call on Tab, found as bash finds it.
f=$(complete -p virt-pci | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
"$f" virt-pci "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let last_empty = words.last() == Some(&"");
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(repo())
        .env("VP", exe())
        .env("WORDS", words.join(" "))
        .env("LAST_EMPTY", if last_empty { "1" } else { "" })
        .env("VIRT_PCI_NO_COMPANION", "")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRT_PCI_ROOT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "bash: {err}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_after_the_subcommand_name() {
    // clap's static script never got here (clap-rs/clap#6421: the hyphen).
    assert_eq!(bash_complete(&["virt-pci", "show", "--js"]), ["--json"]);
    assert_eq!(bash_complete(&["virt-pci", "snip"]), ["snippet"]);
    assert_eq!(
        bash_complete(&["virt-pci", "snippet", "--managed", ""]),
        ["yes", "no"]
    );
}

#[test]
fn bash_completes_device_addresses_from_the_snapshot_on_the_line() {
    assert_eq!(
        bash_complete(&["virt-pci", "--snapshot", S001, "show", "01:"]),
        ["01:00.0", "01:00.1"]
    );
    // The global option may follow the subcommand; full addresses when typed.
    assert_eq!(
        bash_complete(&["virt-pci", "detach", "--snapshot", S001, "0000:01:00.1"]),
        ["0000:01:00.1"]
    );
    // Another host, other devices: 004's Turing GPU has four functions.
    let s004 = "samples/hosts/004-msi-b550m-mortar-turing-4fn.json";
    assert_eq!(
        bash_complete(&["virt-pci", "--snapshot", s004, "snippet", "2b:"]),
        ["2b:00.0", "2b:00.1", "2b:00.2", "2b:00.3"]
    );
}

#[test]
fn bash_completes_a_domain_file_then_devices_for_add() {
    assert_eq!(
        bash_complete(&["virt-pci", "add", "samples/domains/win11-q"]),
        ["samples/domains/win11-q35.xml"]
    );
    assert_eq!(
        bash_complete(&["virt-pci", "add", "x.xml", "--snapshot", S001, "00:1f."]),
        ["00:1f.0", "00:1f.2", "00:1f.3", "00:1f.4", "00:1f.6"]
    );
}

#[test]
fn bash_completes_snapshot_files() {
    let got = bash_complete(&["virt-pci", "--snapshot", "samples/hosts/01"]);
    assert!(
        got.contains(&"samples/hosts/011-asus-prime-z690p-rx6650xt.json".to_string()),
        "{got:?}"
    );
    assert!(got.iter().all(|g| g.ends_with(".json")), "{got:?}");
    // Directories are offered to walk into; other files are not.
    assert_eq!(
        bash_complete(&["virt-pci", "--snapshot", "samples/ho"]),
        ["samples/hosts/"]
    );
    assert_eq!(
        bash_complete(&["virt-pci", "--snapshot", "Cargo."]),
        Vec::<String>::new()
    );
}

/// Domain names come from libvirt (the test driver's `test` domain).
#[cfg(feature = "libvirt")]
#[test]
fn bash_completes_domain_names_with_a_connection() {
    let got = bash_complete(&["virt-pci", "-c", "test:///default", "prepare", "t"]);
    assert_eq!(got, ["test"]);
    let got = bash_complete(&["virt-pci", "-c", "test:///default", "add", "--domain", ""]);
    assert_eq!(got, ["test"]);
    // No connection named: no daemon is asked; domain files are offered.
    let got = bash_complete(&["virt-pci", "prepare", "samples/domains/win11"]);
    assert_eq!(got, ["samples/domains/win11-q35.xml"]);
}

#[test]
fn fish_completes_and_zsh_and_fish_parse_their_scripts() {
    let dir = tempfile::tempdir().unwrap();
    for (shell, file) in [("zsh", "_virt-pci"), ("fish", "virt-pci.fish")] {
        need(shell);
        let out = Command::new(exe())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let p = dir.path().join(file);
        std::fs::write(&p, &out.stdout).unwrap();
        let check = Command::new(shell).arg("-n").arg(&p).output().unwrap();
        assert!(
            check.status.success(),
            "{shell} -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    // fish answers a completion request without a terminal.
    let bin_dir = exe().parent().unwrap().to_path_buf();
    let out = Command::new("fish")
        .arg("-c")
        .arg(format!(
            "source {}; complete --do-complete 'virt-pci --snapshot {S001} show 01:00.'",
            dir.path().join("virt-pci.fish").display()
        ))
        .current_dir(repo())
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(got, ["01:00.0", "01:00.1"], "{text}");
    assert!(
        text.contains("01:00.0\tVGA compatible controller"),
        "{text}"
    );
}

#[test]
fn man_pages_exist_for_every_subcommand_the_main_page_lists() {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(exe())
        .args(["man", "--dir"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let main = std::fs::read_to_string(dir.path().join("virt-pci.1")).unwrap();
    let listed: Vec<String> = main
        .lines()
        .filter_map(|l| l.strip_prefix("virt\\-pci\\-")?.strip_suffix("(1)"))
        .map(|c| c.replace("\\-", "-"))
        .collect();
    assert!(listed.len() >= 15, "{listed:?}");
    for c in &listed {
        let page = std::fs::read_to_string(dir.path().join(format!("virt-pci-{c}.1")))
            .unwrap_or_else(|e| panic!("virt-pci-{c}.1: {e}"));
        assert!(page.contains(&format!(".TH virt-pci-{c} 1")), "{page}");
        // Printed alone, the same bytes.
        let one = Command::new(exe()).args(["man", c]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&one.stdout), page);
    }
    let bad = Command::new(exe())
        .args(["man", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("help: pages exist for: list, show"));
}

#[test]
fn completions_and_man_end_quietly_on_a_closed_pipe() {
    for args in [&["completions", "bash"][..], &["man"], &["man", "--help"]] {
        // The reader is gone before the first write: EPIPE, deterministically.
        let (r, w) = std::io::pipe().unwrap();
        drop(r);
        let out = Command::new(exe()).args(args).stdout(w).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
    }
}
