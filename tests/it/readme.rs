//! README.md's console examples run as written and print what they show.
//!
//! Every ```console block of README.md is a session: a line starting with
//! `$ ` is a command (a trailing `\` continues it on the next line), the
//! lines up to the next command or the end of the block are its exact
//! output, stdout and stderr as a terminal interleaves them (`2>&1`), with
//! colour off (`NO_COLOR=1`, and output is not a terminal). Commands run in
//! bash, so pipes and `> file` work as shown; `virt-pci` is the binary under
//! test (first on PATH).
//!
//! Each block runs in its own temporary directory standing in for the
//! repository root: `samples/` and `tests/fixtures/` are copies (so `-i`
//! edits never touch the checkout), and a `cd` inside a block lasts for
//! that block. Normalised: nothing, except that the temporary directory's
//! path, should a command print it, reads `$TMP`. Exit codes are not
//! compared (a failing example shows its error text).
//!
//! After a deliberate change of output, `README_BLESS=1 cargo test --test
//! readme` writes what the commands print into README.md; review the diff.
//!
//! A command that reads a host must name it (`--snapshot samples/hosts/…`,
//! `--root DIR` or `-c test:///…`): the README's output must be the same on
//! every machine, and no example may read this machine's devices.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Cmd {
    line: usize,
    text: String,
    expected: String,
    /// The output's lines in README.md (1-based, end exclusive).
    out: std::ops::Range<usize>,
}

struct Block {
    line: usize,
    cmds: Vec<Cmd>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = readme
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .peekable();
    while let Some((n, l)) = lines.next() {
        if l.trim_end() != "```console" {
            continue;
        }
        let mut b = Block {
            line: n,
            cmds: Vec::new(),
        };
        while let Some((n, l)) = lines.next() {
            if l.starts_with("```") {
                break;
            }
            if let Some(c) = l.strip_prefix("$ ") {
                let mut text = c.to_string();
                let mut last = n;
                while text.ends_with('\\') {
                    let Some((m, next)) = lines.next() else { break };
                    text.push('\n');
                    text.push_str(next);
                    last = m;
                }
                b.cmds.push(Cmd {
                    line: n,
                    text,
                    expected: String::new(),
                    out: last + 1..last + 1,
                });
            } else if let Some(c) = b.cmds.last_mut() {
                c.expected.push_str(l);
                c.expected.push('\n');
                c.out.end = n + 1;
            } else {
                panic!("README.md:{n}: output before the first `$ ` command of the block");
            }
        }
        out.push(b);
    }
    out
}

/// Subcommands that read a host, and so must name one.
const READS_HOST: [&str; 12] = [
    "list", "show", "usb", "snippet", "add", "detach", "reattach", "reset", "check", "prepare",
    "release", "snapshot",
];

/// The README line names its host (or needs none).
fn names_host(cmd: &str) -> bool {
    cmd.split(['|', ';', '&'])
        .filter_map(|part| {
            let words: Vec<&str> = part.split_whitespace().collect();
            let at = words.iter().position(|w| *w == "virt-pci")?;
            Some(words[at + 1..].to_vec())
        })
        .all(|words| {
            // `map check MAPPING --hosts HOST...` names its hosts itself.
            if words.first() == Some(&"map") {
                return words.contains(&"--hosts");
            }
            let sub = words
                .iter()
                .find(|w| READS_HOST.contains(w) || **w == "validate");
            let Some(sub) = sub else { return true };
            if *sub == "validate" || words.contains(&"--from-listing") {
                return true;
            }
            if *sub == "add" && words.contains(&"--domain") {
                return words.iter().any(|w| w.starts_with("test:///"));
            }
            words.iter().zip(words.iter().skip(1)).any(|(a, b)| {
                matches!(*a, "--snapshot" | "--root") || (*a == "-c" && b.starts_with("test:///"))
            })
        })
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn bin_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join(".bin");
    fs::create_dir_all(&d).unwrap();
    // bash runs it; every command line names its host (checked below).
    std::os::unix::fs::symlink(crate::run::bin_path(), d.join("virt-pci")).unwrap();
    d
}

#[test]
fn readme_console_examples_print_what_they_show() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(repo.join("README.md")).unwrap();
    let blocks = blocks(&readme);
    assert!(
        blocks.len() >= 5,
        "README.md has {} console blocks",
        blocks.len()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    // README_BLESS=1: write what the commands print into README.md (for a
    // reviewed `git diff`, after a deliberate change of output).
    let mut bless: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    for b in &blocks {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("virt-pci");
        copy_dir(&repo.join("samples"), &root.join("samples"));
        copy_dir(&repo.join("tests/fixtures"), &root.join("tests/fixtures"));
        let bin = bin_dir(tmp.path());
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // One bash per block, so `cd` and variables last for the block; each
        // command's output is cut out between markers.
        let mut script = String::from("set +e\n");
        for (i, c) in b.cmds.iter().enumerate() {
            if !names_host(&c.text) {
                failures.push(format!(
                    "README.md:{}: `{}` reads a host but names none: add `--snapshot samples/hosts/...`",
                    c.line, c.text
                ));
            }
            script.push_str(&format!(
                "printf '\\x1e{i}\\x1e'\n{{\n{}\n}} 2>&1\n",
                c.text
            ));
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(&root)
            .env("PATH", path)
            .env("HOME", tmp.path())
            .env("NO_COLOR", "1")
            .env("LC_ALL", "C.UTF-8")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .env_remove("VIRT_PCI_ROOT")
            .env_remove("VIRT_PCI_NO_COMPANION")
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout).replace(&*root.to_string_lossy(), "$TMP");
        let mut parts = all.split('\x1e').skip(1);
        for (i, c) in b.cmds.iter().enumerate() {
            ran += 1;
            let marker = parts.next().unwrap_or_default();
            let got = parts.next().unwrap_or_default();
            if marker != i.to_string() {
                failures.push(format!(
                    "README.md:{}: the block stopped before `{}` (stderr: {})",
                    c.line,
                    c.text,
                    String::from_utf8_lossy(&out.stderr)
                ));
                break;
            }
            if got != c.expected {
                bless.push((c.out.clone(), got.to_string()));
                let diff = similar::TextDiff::from_lines(c.expected.as_str(), got)
                    .unified_diff()
                    .header("README", "printed")
                    .to_string();
                failures.push(format!(
                    "README.md:{}: `{}` (block at line {}) prints something else:\n{diff}",
                    c.line, c.text, b.line
                ));
            }
        }
    }
    if std::env::var_os("README_BLESS").is_some() && !bless.is_empty() {
        let mut lines: Vec<String> = readme.lines().map(str::to_string).collect();
        for (range, got) in bless.into_iter().rev() {
            let new: Vec<String> = got.lines().map(str::to_string).collect();
            lines.splice(range.start - 1..range.end - 1, new);
        }
        fs::write(repo.join("README.md"), lines.join("\n") + "\n").unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} README commands:\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_extractor_reads_commands_outputs_and_continuations() {
    let md = "text\n```console\n$ virt-pci --snapshot s.json show 01:00.0 \\\n  --json\n{}\n$ echo a\na\n\n```\n```sh\n$ not run\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].cmds.len(), 2);
    assert_eq!(
        b[0].cmds[0].text,
        "virt-pci --snapshot s.json show 01:00.0 \\\n  --json"
    );
    assert_eq!(b[0].cmds[0].expected, "{}\n");
    assert_eq!(b[0].cmds[1].expected, "a\n\n");
    assert!(names_host(&b[0].cmds[0].text));
    assert!(!names_host("virt-pci snippet 01:00.0 > gpu.xml"));
    assert!(!names_host("virt-pci -c qemu:///system list"));
    assert!(names_host("virt-pci validate samples/domains/"));
    assert!(names_host("head -5 gpu.xml"));
    assert!(names_host("virt-pci --root fake list | head -3"));
}
