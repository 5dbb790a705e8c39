#!/usr/bin/env python3
"""libvirt's own QEMU driver as the oracle for domains `virt-pci add` writes.

For every input domain (the real-world files in ../shared/wild-domains, read
from there, and a subset of libvirt 9.0's qemuxml2argvdata corpus) this runs
`virt-pci add` with guest addresses, boot orders, aliases and ROM files, on
absent and on present devices, and demands of each run:

  * refused: exit code != 0, an `error:` that names the conflict, and no
    output file written; or
  * accepted: libvirt's `virsh -c qemu:///session define` takes the output
    whenever it took the input (then the domain is undefined again).

And plain `add` (no options) followed by `remove` gives back the input byte
for byte (every wild file; the corpus has its own round-trip suite).

The QEMU driver runs unprivileged (the suite drops to uid 65534 with a
throw-away $HOME and XDG_RUNTIME_DIR; libvirtd's session daemon is
autostarted once and reused; nothing is ever started, only defined).

Normalised inputs, because this machine's QEMU cannot take them for reasons
unrelated to passthrough (each change is printed in the summary):
  * <domain type='kvm'> -> 'qemu': the unprivileged session cannot open
    /dev/kvm ("Emulator ... does not support virt type 'kvm'");
  * <emulator> -> /usr/bin/qemu-system-x86_64: the other machines' paths;
  * machine='pc-q35-X.Y'/'pc-i440fx-X.Y' -> 'q35'/'pc': versions this QEMU
    (bookworm 7.2, or 10 from backports after make e2e) may lack;
  * <watchdog model='itco'> removed and <audio type='pipewire'> made
    type='none': written by libvirt >= 9.1, unknown to 9.0.
The normalised file is the input to both the oracle and virt-pci.
"""

import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("VIRT_PCI", str(ROOT / "target/debug/virt-pci"))
# Hosts: samples 004 (GPU 2b:00, 4 functions) and 010 (Radeon 03:00.0) as
# snapshots with their host-critical facts stated (the suite makes them).
S4 = os.environ.get("ORACLE_S4", str(ROOT / "samples/hosts/004-msi-b550m-mortar-turing-4fn.json"))
S10 = os.environ.get("ORACLE_S10", str(ROOT / "samples/hosts/010-asus-z690-alderlake-tb4-2xradeon.json"))
EXTRA = os.environ.get("VIRT_PCI_ORACLE_EXTRA", "").split()

NORMALISE = [
    ("domain type kvm -> qemu (no /dev/kvm for the unprivileged session)",
     re.compile(r"(<domain\b[^>]*\btype=)(['\"])kvm\2"), r"\1\2qemu\2"),
    ("emulator path -> /usr/bin/qemu-system-x86_64",
     re.compile(r"<emulator>[^<]*</emulator>"), "<emulator>/usr/bin/qemu-system-x86_64</emulator>"),
    ("versioned q35 machine -> q35 (versions this QEMU may lack)",
     re.compile(r"machine=(['\"])pc-q35-[0-9.]+\1"), r"machine=\1q35\1"),
    ("versioned i440fx machine -> pc (versions this QEMU may lack)",
     re.compile(r"machine=(['\"])pc-i440fx-[0-9.]+\1"), r"machine=\1pc\1"),
    ("watchdog model itco removed (libvirt >= 9.1)",
     re.compile(r"<watchdog\b[^>]*model=(['\"])itco\1[^>]*?(/>|>.*?</watchdog>)", re.S), ""),
    ("audio type pipewire -> none (libvirt >= 9.1)",
     re.compile(r"(<audio\b[^>]*type=)(['\"])pipewire\2"), r"\1\2none\2"),
    ("hpet timer removed (this QEMU's machine has none: 'hpet timer is not supported')",
     re.compile(r"<timer\s+name=(['\"])hpet\1[^>]*/>"), ""),
    ("virtiofs <filesystem> removed (not in session mode)",
     re.compile(r"<filesystem\b(?:(?!</filesystem>).)*virtiofs.*?</filesystem>", re.S), ""),
    ("os firmware='efi' removed next to an explicit <loader> (libvirt < 9.2 refuses both)",
     re.compile(r"(<os\b[^>]*?)\s+firmware=(['\"])efi\2(?=[^>]*>(?:(?!</os>).)*<loader\b[^>]*>\s*/)", re.S), r"\1"),
    ("<os><firmware> features removed with it (autoselection is off then)",
     re.compile(r"(<os\b(?![^>]*firmware=)[^>]*>(?:(?!</os>).)*?)<firmware>.*?</firmware>", re.S), r"\1"),
]


def normalise(text):
    used = []
    for why, rx, rep in NORMALISE:
        new = rx.sub(rep, text)
        if new != text:
            used.append(why)
        text = new
    return text, used


class Oracle:
    """virsh define/undefine as the unprivileged user."""

    def __init__(self, home, run):
        self.env = {"PATH": "/usr/bin:/usr/sbin:/bin:/sbin", "HOME": home,
                    "XDG_RUNTIME_DIR": run, "LC_ALL": "C"}
        self.n = 0

    def virsh(self, *args):
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
               "virsh", "-q", "-c", "qemu:///session", *args]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True)

    def define(self, path):
        """None when libvirt accepts the file, else its error."""
        self.n += 1
        # A unique name, so leftovers of one file never meet the next.
        text = Path(path).read_text()
        name = f"oracle-{self.n}"
        text2 = re.sub(r"<name>[^<]*</name>", f"<name>{name}</name>", text, count=1)
        text2 = re.sub(r"<uuid>[^<]*</uuid>", "", text2, count=1)
        tmp = f"{path}.define.xml"
        Path(tmp).write_text(text2)
        os.chmod(tmp, 0o644)
        r = self.virsh("define", tmp)
        os.unlink(tmp)
        if r.returncode != 0:
            err = " ".join(l for l in r.stderr.splitlines() if l and "Failed to define" not in l)
            return err.replace("error: ", "").strip() or "define failed"
        u = self.virsh("undefine", "--nvram", name)
        if u.returncode != 0:
            self.virsh("undefine", name)
        return None


# validate's guest-side codes and the libvirt error each stands for.
VP_LIBVIRT = {
    "VP031": "Attempted double use of PCI Address",
    "VP032": "used for more than one device",
    "VP033": "per-device boot elements cannot be used together with os/boot elements",
    "VP034": "Invalid PCI address",
    "VP035": "non unique alias detected",
}
FIXTURES = ["vp031-built-in", "vp032-boot-order", "vp033-boot-styles",
            "vp034-missing-bus", "vp035-alias"]


def validate_codes(path):
    r = run_vp(["validate", "--format", "json", str(path)])
    import json
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        return None
    return {d["code"] for d in rep["diagnostics"] if d["severity"] == "error"}


def agree(name, path, err, failures, stats):
    """validate's VP031-VP035 say what libvirt says about the same file."""
    codes = validate_codes(path)
    if codes is None:
        failures.append(f"{name}: validate gave no JSON report")
        return
    ours = {c for c in codes if c in VP_LIBVIRT}
    if err is None:
        if ours:
            failures.append(f"{name}: libvirt defines it, validate reports {sorted(ours)}")
        else:
            stats["validate agrees (libvirt defines, no VP031-VP035)"] += 1
        return
    theirs = {c for c, m in VP_LIBVIRT.items() if m in err}
    # "Invalid PCI address" also covers the ranges VP020/VP021 report.
    if theirs and not (theirs & ours) and not (codes & {"VP020", "VP021"}):
        failures.append(f"{name}: libvirt refuses ({err}), validate reports {sorted(codes)}")
    elif theirs:
        stats["validate agrees (libvirt refuses, same VP code)"] += 1


def run_vp(args):
    return subprocess.run([BIN, *args], capture_output=True, text=True)


def main():
    wild_dir = Path(sys.argv[1])
    corpus_dir = Path(sys.argv[2])
    work = Path(sys.argv[3])
    oracle = Oracle(sys.argv[4], sys.argv[5])
    inputs = sorted(wild_dir.glob("*.xml"))
    n_wild = len(inputs)
    corpus = sorted(p for p in corpus_dir.glob("*.xml")
                    if re.search(r"hostdev|pci|boot|alias|q35", p.name, re.I))
    inputs += corpus
    # Readings where virt-pci once differed from libvirt (issue: hostile
    # input): numbers with a leading space or `+`, a second <devices>, and
    # foreign-namespace elements. Each holds host device 2b:00.0 as libvirt
    # reads it (or, for the namespaced one, does not): `add 2b:00.0` must
    # neither duplicate it nor miss it.
    hd = "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='{b}' slot='0x00' function='0x0'/></source></hostdev>"
    head = "<domain type='qemu'>\n  <name>c</name>\n  <memory>131072</memory>\n  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n"
    constructed = {
        "bus-plus.xml": head + "  <devices>\n    " + hd.format(b="+0x2b") + "\n  </devices>\n</domain>\n",
        "bus-space.xml": head + "  <devices>\n    " + hd.format(b=" 0x2b") + "\n  </devices>\n</domain>\n",
        "two-devices.xml": head + "  <devices>\n    <controller type='usb' model='qemu-xhci'/>\n  </devices>\n  <devices>\n    " + hd.format(b="0x2b") + "\n  </devices>\n</domain>\n",
        "foreign-ns.xml": head + "  <x:devices xmlns:x='urn:x'>\n    " + hd.format(b="0x2b").replace("<", "<x:").replace("<x:/", "</x:") + "\n  </x:devices>\n  <devices>\n  </devices>\n</domain>\n",
    }
    cdir = work / "constructed"
    cdir.mkdir()
    for n, t in constructed.items():
        (cdir / n).write_text(t)
        inputs.append(cdir / n)
    failures = []
    stats = Counter()
    norm_used = Counter()
    refused = Counter()
    in_refused = Counter()
    for i, src in enumerate(inputs):
        kind = "wild" if i < n_wild else "corpus" if i < n_wild + len(corpus) else "constructed"
        raw = src.read_bytes()
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            stats[f"{kind}: not UTF-8, skipped"] += 1
            continue
        # Plain add round trip on the original bytes (wild files).
        if kind == "wild":
            # A device the file does not have yet (2b:00 of sample 004, else 03:00.0 of 010).
            snap, dev, sel = S4, "2b:00.0", "2b:00"
            if re.search(r"bus=['\"]0x2b['\"]", text):
                snap, dev, sel = S10, "03:00.0", "03:00.0"
            a = run_vp(["--snapshot", snap, "add", str(src), dev])
            if a.returncode != 0 or "already in" in a.stderr:
                failures.append(f"{src.name}: plain add failed: {a.stderr.strip()[-300:]}")
            else:
                rt = work / "rt.xml"
                rt.write_text(a.stdout)
                r = run_vp(["remove", str(rt), sel])
                if r.returncode != 0 or r.stdout != text:
                    failures.append(f"{src.name}: add then remove is not byte-exact")
                else:
                    stats["wild: plain add round trip byte-exact"] += 1
        if kind == "constructed":
            a = run_vp(["--snapshot", S4, "add", str(src), "2b:00.0"])
            present = "already in" in a.stderr
            if present != ("foreign" not in src.name):
                failures.append(f"{src.name}: add 2b:00.0 says already-present={present}")
        if "arch='x86_64'" not in text and 'arch="x86_64"' not in text and kind == "corpus":
            stats["corpus: not x86_64 (this QEMU is x86 only), skipped"] += 1
            continue
        ntext, used = normalise(text)
        for u in used:
            norm_used[u] += 1
        base = work / f"{i:04d}.xml"
        base.write_text(ntext)
        err = oracle.define(base)
        agree(src.name, base, err, failures, stats)
        if err:
            in_refused[re.sub(r"'[^']*'|[0-9a-f]{4}:[0-9a-f:.]+", "…", err)[:90]] += 1
            stats[f"{kind}: input refused by libvirt, not used"] += 1
            continue
        stats[f"{kind}: input defined"] += 1
        cases = [
            ("plain", [S4, str(base), "2b:00.0"]),
            ("guest-multifunction 06:00.0", [S4, str(base), "2b:00.0", "--guest-address", "0000:06:00.0", "--guest-multifunction"]),
            ("guest-address 00:05.0", [S4, str(base), "2b:00.0", "--guest-address", "0000:00:05.0"]),
            ("guest-address 01:00.0 multifunction", [S4, str(base), "2b:00.0", "--guest-address", "0000:01:00.0", "--guest-multifunction"]),
            ("boot-order 1", [S10, str(base), "03:00.0", "--boot-order", "1"]),
            ("boot-order 2 alias rom", [S10, str(base), "03:00.0", "--boot-order", "2", "--alias", "ua-gpu", "--rom-file", "/usr/share/vgabios/gpu.rom"]),
        ]
        outs = {}
        for label, (snap, *args) in cases:
            out = work / f"{i:04d}-{len(outs)}.out.xml"
            r = run_vp(["--snapshot", snap, *EXTRA, "add", *args, "-o", str(out)])
            outs[label] = (r, out)
            check(oracle, src.name, label, r, out, failures, stats, refused)
        # A second device with the same alias, and options for a present device.
        r, out = outs["boot-order 2 alias rom"]
        if r.returncode == 0:
            out2 = work / f"{i:04d}-alias2.out.xml"
            r2 = run_vp(["--snapshot", S4, *EXTRA, "add", str(out), "2b:00.0", "--alias", "ua-gpu", "-o", str(out2)])
            check(oracle, src.name, "same alias again", r2, out2, failures, stats, refused)
        r, out = outs["plain"]
        if r.returncode == 0:
            out3 = work / f"{i:04d}-present.out.xml"
            r3 = run_vp(["--snapshot", S4, *EXTRA, "add", str(out), "2b:00.0", "--rom-file", "/x.rom", "--boot-order", "2", "--alias", "ua-x", "-o", str(out3)])
            check(oracle, src.name, "options on a present device", r3, out3, failures, stats, refused)
            if r3.returncode == 0:
                failures.append(f"{src.name}: options on a present device were accepted")
    # The fixtures of validate's guest-side codes: libvirt refuses each with
    # the message the help quotes.
    for fx in FIXTURES:
        path = ROOT / f"tests/fixtures/validate/{fx}.xml"
        ntext, _ = normalise(path.read_text())
        tmp = work / f"{fx}.xml"
        tmp.write_text(ntext)
        err = oracle.define(tmp)
        code = fx[:5].upper()
        if err is None or VP_LIBVIRT[code] not in err:
            failures.append(f"fixture {fx}: libvirt says {err!r}, expected {VP_LIBVIRT[code]!r}")
        elif code not in (validate_codes(tmp) or set()):
            failures.append(f"fixture {fx}: validate does not report {code}")
        else:
            stats["fixtures VP031-VP035 refused by libvirt as validate says"] += 1
    print("oracle: libvirt QEMU driver (virsh define, qemu:///session, unprivileged)")
    print(f"oracle: {n_wild} wild domains, {len(corpus)} corpus files (qemuxml2argvdata names with hostdev|pci|boot|alias|q35)")
    for k, v in sorted(stats.items()):
        print(f"  {v:5d}  {k}")
    print("normalised (this machine's QEMU, not passthrough):")
    for k, v in norm_used.most_common():
        print(f"  {v:5d}  {k}")
    print("inputs libvirt refused before any edit:")
    for k, v in in_refused.most_common(12):
        print(f"  {v:5d}  {k}")
    print("refused by virt-pci (nothing written), by reason:")
    for k, v in refused.most_common():
        print(f"  {v:5d}  {k}")
    if failures:
        kinds = Counter(re.sub(r"^.*?\[([^]]*)\]: ([a-z ]+).*$", r"\1: \2", f) for f in failures)
        print("problems by case:")
        for k, v in kinds.most_common(20):
            print(f"  {v:5d}  {k}")
        print(f"FAIL: {len(failures)} problems")
        for f in failures[:60]:
            print("  " + f)
        sys.exit(1)
    print("PASS libvirt-oracle")


REASONS = [
    ("guest slot taken", "is taken"),
    ("guest bus missing", "does not exist in this domain"),
    ("bus takes no endpoint device", "takes no endpoint device"),
    ("slot not allowed on the bus", "slot must be"),
    ("no free guest slot", "are free there"),
    ("no free guest slot", "no free guest PCI slot"),
    ("boot order taken", "already has <boot order"),
    ("os/boot dev present", "boots with <os><boot"),
    ("alias used", "is already used by"),
    ("device already present with options", "would not be applied"),
    ("guest slots run past 0x1f", "run past slot"),
]


def check(oracle, name, label, r, out, failures, stats, refused):
    if r.returncode != 0:
        if out.exists():
            failures.append(f"{name} [{label}]: refused but wrote {out}")
        err = r.stderr
        if "error:" not in err:
            failures.append(f"{name} [{label}]: exit {r.returncode} without an error: {err[-300:]}")
            return
        why = next((k for k, s in REASONS if s in err), None)
        if why is None:
            line = next((l for l in err.splitlines() if l.startswith("error")), err)
            failures.append(f"{name} [{label}]: refused for an unexpected reason: {line[:300]}")
            return
        refused[f"{label}: {why}"] += 1
        stats["runs refused with a named conflict"] += 1
        return
    if not out.exists():
        failures.append(f"{name} [{label}]: exit 0 but no output")
        return
    err = oracle.define(out)
    if err:
        failures.append(f"{name} [{label}]: libvirt refuses what add wrote: {err}")
    else:
        stats["runs accepted by libvirt define"] += 1


if __name__ == "__main__":
    main()
