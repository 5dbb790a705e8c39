#!/usr/bin/env python3
"""`make bench` runner: generate inputs, time virt-pci against the tools users
would pick instead, write JSON results and BENCHMARKS.md.

Called by scripts/bench.sh after the release build. Everything lands under
target/bench/ (inputs, results/*.json); only BENCHMARKS.md is meant to be
committed. Whole-process timings come from hyperfine (-N: no shell, so no
shell start-up is subtracted or added), peak memory from /usr/bin/time -v.
Every command is first run once on its own ("smoke"): a command that fails is
reported as failed with its message instead of being timed.

Environment: BENCH_QUICK=1 for a fast pass while developing (fewer runs, no
16,384-function tree); BENCH_BIN to time another binary.
"""
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
OUT = "target/bench"
RES = os.path.join(OUT, "results")
BIN = os.environ.get("BENCH_BIN", "target/release/virt-pci")
PLAIN = os.environ.get("BENCH_BIN_PLAIN")  # virt-pci-libvirt, the libvirt-linked companion
QUICK = os.environ.get("BENCH_QUICK", "0") == "1"
SIZES = ([int(x) for x in os.environ["BENCH_SIZES"].split(",")] if os.environ.get("BENCH_SIZES")
         else [256, 4096] if QUICK else [256, 4096, 16384])
VALIDATE_FILES = 1000
GENERATED_DOMAINS = 200  # the rest of the 1,000 come from libvirt's corpus
XVV_SUBSET = 30 if QUICK else 100  # virt-xml-validate: ~50 ms per file
ARCH_MAX_GROUPS = {16384: 256}  # Arch script on the first N groups only (quadratic)
# Fake sysfs trees go to tmpfs when there is room: sysfs lives in memory too,
# and 1.5 GB of small files on a shared disk measured the disk, not the tools.
TREES = os.environ.get("BENCH_TREES") or (
    "/dev/shm/virt-pci-bench" if os.path.isdir("/dev/shm") and
    shutil.disk_usage("/dev/shm").free > 4 << 30 else os.path.join(OUT, "trees"))
KEEP_TREES = os.environ.get("BENCH_KEEP", "0") == "1"
# Target values from issue 7.
T_VALIDATE_XVV = 250.0
T_VALIDATE_XMLLINT = 10.0
T_BIG_MBS = 70.0
T_BIG_MEM = 3.0
T_SMALL_MS = 2.0
T_START_MS = 2.0

meta = {"benchmarks": {}, "notes": [], "failures": []}


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), text=True,
                          capture_output=True, **kw)


def smoke(argv, ok=(0,)):
    """Run once; return None when fine, else a one-line failure message."""
    t = time.time()
    try:
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True, errors="replace", timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{argv[0]}: {e}"
    if p.returncode not in ok:
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if "error" in ln.lower()), lines[0] if lines else "")
        return f"exit {p.returncode}: {first[:200]}"
    log(f"  smoke ok ({time.time() - t:.2f} s): {short(argv)}")
    return None


def short(argv, limit=160):
    s = " ".join(argv)
    return s if len(s) <= limit else s[:limit] + " …"


def hyperfine(name, cmds, runs=10, warmup=2, ok=(0,), check=True):
    """cmds: list of (label, argv, display). Runs hyperfine over the commands
    that pass the smoke test (check=False: no smoke run, for the slow Arch
    script; hyperfine itself then fails on a non-zero exit); records
    results/NAME.json."""
    good = []
    bench = meta["benchmarks"].setdefault(name, {})
    for label, argv, display in cmds:
        bench[label] = {"command": display}
        err = smoke(argv, ok) if check else None
        if err:
            bench[label]["failed"] = err
            meta["failures"].append(f"{name} / {label}: {err}")
            log(f"  FAILED {label}: {err}")
        else:
            good.append((label, argv))
    if not good:
        return
    out = os.path.join(RES, f"{name}.json")
    hf = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--warmup", str(warmup),
          "--export-json", out]
    if ok != (0,):
        hf.append("-i")
    for label, argv in good:
        hf += ["-n", label, subprocess.list2cmdline(argv)]
    log(f"{name}: hyperfine over {len(good)} commands, {runs} runs each")
    p = subprocess.run(hf, capture_output=True, text=True)
    if p.returncode != 0:
        meta["failures"].append(f"{name}: hyperfine failed: {p.stderr.strip()[:300]}")
        log(p.stderr)
        return
    for r in json.load(open(out))["results"]:
        bench[r["command"]].update(
            median=r["median"], min=r["min"], max=r["max"], mean=r["mean"],
            stddev=r.get("stddev"), runs=len(r["times"]))


def peak_rss(argv, runs=3):
    """Median of /usr/bin/time -v's "Maximum resident set size" (KiB)."""
    vals = []
    for _ in range(runs):
        p = subprocess.run(["/usr/bin/time", "-v"] + argv, capture_output=True, text=True)
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
        if m:
            vals.append(int(m.group(1)))
    vals.sort()
    return vals[len(vals) // 2] if vals else None


# ---------------------------------------------------------------- machine

def machine():
    cpu = "?"
    for ln in open("/proc/cpuinfo"):
        if ln.startswith("model name"):
            cpu = ln.split(":", 1)[1].strip()
            break
    mem = "?"
    for ln in open("/proc/meminfo"):
        if ln.startswith("MemTotal"):
            mem = f"{int(ln.split()[1]) / 1024 / 1024:.1f} GiB"
    ver = lambda c: (sh(c).stdout or sh(c).stderr).strip().splitlines()[0] if shutil.which(c.split()[0]) else "not installed"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME").stdout.strip(),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "virt_pci": sh([BIN, "--version"]).stdout.strip(),
        "git": sh("git describe --always --dirty").stdout.strip(),
        "git_branches_merged": sh("git log --merges --format=%s -n 20").stdout.strip().splitlines(),
        "build": os.environ.get("BENCH_BUILD", "cargo build --release"),
        "tools": {
            "hyperfine": ver("hyperfine --version"),
            "xmllint": ver("xmllint --version"),
            "lspci": ver("lspci --version"),
            "virt-xml": ver("virt-xml --version"),
            "libvirt (virt-xml-validate)": sh("dpkg-query -W -f='${Version}' libvirt-clients").stdout,
            "python3": platform.python_version(),
        },
    }


# ---------------------------------------------------------------- inputs

def corpus_domains(corpus):
    """Every <domain> document in libvirt's test data, sorted."""
    found = []
    tests = os.path.join(corpus, "tests")
    for d in sorted(os.listdir(tests)):
        if not d.endswith("data"):
            continue
        for dirpath, _, files in os.walk(os.path.join(tests, d)):
            for f in sorted(files):
                if not f.endswith(".xml"):
                    continue
                p = os.path.join(dirpath, f)
                try:
                    with open(p, "rb") as fh:
                        head = fh.read(4096)
                except OSError:
                    continue
                if re.search(rb"^\s*(<!--.*?-->\s*)*<domain[\s>]", head, re.S):
                    found.append(p)
    return sorted(found)


def prepare_validate(corpus):
    d = os.path.join(OUT, "validate")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    domains = corpus_domains(corpus)
    rng = random.Random(7)
    take = VALIDATE_FILES - GENERATED_DOMAINS
    picked = rng.sample(domains, min(take, len(domains)))
    files = []
    for i, p in enumerate(sorted(picked)):
        rel = os.path.relpath(p, os.path.join(corpus, "tests")).replace("/", "__")
        dst = os.path.join(d, f"c{i:03d}-{rel}")
        shutil.copyfile(p, dst)
        files.append(dst)
    gen = sorted(os.listdir(os.path.join(OUT, "domains/hostdev")))
    for f in gen[: VALIDATE_FILES - len(files)]:
        dst = os.path.join(d, "g-" + f)
        shutil.copyfile(os.path.join(OUT, "domains/hostdev", f), dst)
        files.append(dst)
    subset = sorted(rng.sample(files, XVV_SUBSET))
    lst = os.path.join(OUT, "validate-subset.txt")
    with open(lst, "w") as fh:
        fh.write("".join(f + "\n" for f in subset))
    meta["validate"] = {"files": len(files), "corpus_files": len(picked),
                        "corpus_domains_available": len(domains),
                        "generated_files": len(files) - len(picked),
                        "bytes": sum(os.path.getsize(f) for f in files),
                        "subset": len(subset), "subset_bytes": sum(os.path.getsize(f) for f in subset)}
    return files, subset, lst


def tree(n):
    d = os.path.join(TREES, f"sriov-{n}")
    stamp = os.path.join(d, ".stamp")
    gen = "bench/gen-sriov-tree.py"
    want = str(os.path.getmtime(gen))
    if not (os.path.exists(stamp) and open(stamp).read() == want):
        log(f"generating the {n}-function SR-IOV tree")
        subprocess.run([sys.executable, gen, str(n), d], check=True, stdout=subprocess.DEVNULL)
        open(stamp, "w").write(want)
    return d


def small_host():
    """The host for add/snippet: a sample host snapshot when the samples
    branch is merged (a real machine's listing), else a small SR-IOV tree
    turned into a snapshot by virt-pci itself."""
    pick = None
    hosts = "samples/hosts"
    if os.path.isdir(hosts):
        for f in sorted(os.listdir(hosts)):
            if f.endswith(".json") and "gtx960" in f:
                pick = os.path.join(hosts, f)
        if not pick:
            js = sorted(f for f in os.listdir(hosts) if f.endswith(".json"))
            pick = os.path.join(hosts, js[0]) if js else None
    if pick:
        # A listing's host-critical facts are unknown, so every plan on it is
        # `unverified` and add/snippet refuse it. The bench measures speed,
        # not the verdict: state the facts (as a user who knows the machine
        # would, `snapshot --root-disk/--default-nic/--boot-vga`) first.
        stated = os.path.join(OUT, "host-stated.json")
        with open(stated, "w") as fh:
            subprocess.run([BIN, "--snapshot", pick, "snapshot", "--root-disk", "none",
                            "--default-nic", "none", "--boot-vga", "none"],
                           stdout=fh, check=True)
        dev = choose_device(stated)
        if dev:
            return stated, dev
    t = tree(32)
    snap = os.path.join(OUT, "host-sriov-32.json")
    with open(snap, "w") as fh:
        subprocess.run([BIN, "--root", t, "snapshot"], stdout=fh, check=True)
    return snap, "0000:01:00.1"


def choose_device(snapshot):
    """A GPU (else any endpoint) in a group without bridges from `list --json`."""
    p = sh([BIN, "--snapshot", snapshot, "list", "--json"])
    if p.returncode != 0:
        return None
    try:
        devs = json.loads(p.stdout)["devices"]
    except (ValueError, KeyError):
        return None
    # A discrete GPU (not on the root bus, not host-critical): the usual case.
    cands = [d for d in devs if d.get("kind") not in ("bridge", "host_bridge")
             and not d.get("critical") and d.get("iommu_group") is not None]
    for want in ("0x03", "0x02", "0x01", "0x04"):
        for d in sorted(cands, key=lambda d: d["address"][5:7] == "00"):
            if d.get("class", "").startswith(want):
                return d["address"]
    return None


# ---------------------------------------------------------------- benchmarks

def bench_validate(files, subset, lst):
    log("validate")
    runs = 3 if QUICK else 10
    hyperfine("validate", [
        ("virt-pci validate", [BIN, "validate"] + files,
         f"virt-pci validate <{len(files)} files>"),
    ] + ([
        ("virt-pci validate, libvirt companion", [PLAIN, "validate"] + files,
         f"virt-pci-libvirt validate <{len(files)} files>"),
    ] if PLAIN else []) + [
        ("xmllint --relaxng (one process)",
         ["xmllint", "--noout", "--relaxng", "/usr/share/libvirt/schemas/domain.rng"] + files,
         f"xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng <{len(files)} files>"),
        ("cat (read the bytes)", ["cat"] + files, f"cat <{len(files)} files>"),
    ], runs=runs, warmup=1, ok=(0, 1, 3))
    hyperfine("validate-xvv", [
        ("virt-xml-validate per file", ["bench/each.sh", lst, "virt-xml-validate"],
         f"for f in <{len(subset)} of the files>; do virt-xml-validate $f; done"),
        ("virt-pci validate per file", ["bench/each.sh", lst, BIN, "validate"],
         f"for f in <{len(subset)} of the files>; do virt-pci validate $f; done"),
    ], runs=2 if QUICK else 3, warmup=0, ok=(0, 1, 3))
    # What virt-pci says about the corpus (it is not all valid on purpose).
    p = sh([BIN, "validate", "--format", "json"] + files)
    meta["validate"]["virt_pci_exit"] = p.returncode
    meta["validate"]["virt_pci_stderr_head"] = p.stderr.strip().splitlines()[:3]
    p = sh(["xmllint", "--noout", "--relaxng", "/usr/share/libvirt/schemas/domain.rng"] + files)
    meta["validate"]["xmllint_failing_files"] = p.stderr.count(" fails to validate")


def bench_list():
    log("list at scale")
    for n in SIZES:
        d = tree(n)
        pcipath = os.path.join(d, "sys/bus/pci")
        big = n >= 16384
        runs = 3 if (QUICK or big) else 10
        hyperfine(f"list-{n}", [
            ("virt-pci list --json", [BIN, "--root", d, "list", "--json"],
             f"virt-pci --root DIR list --json"),
        ] + ([
            ("virt-pci list --json, libvirt companion", [PLAIN, "--root", d, "list", "--json"],
             "virt-pci-libvirt --root DIR list --json"),
        ] if PLAIN else []) + [
            ("lspci -nn", ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={pcipath}", "-nn"],
             "lspci -A linux-sysfs -O sysfs.path=DIR/sys/bus/pci -nn"),
            ("lspci -D -nnk -vmm (driver + group)",
             ["lspci", "-A", "linux-sysfs", "-O", f"sysfs.path={pcipath}", "-D", "-nnk", "-vmm"],
             "lspci -A linux-sysfs -O sysfs.path=DIR/sys/bus/pci -D -nnk -vmm"),
            ("find + cat (read every file)",
             ["find", os.path.join(d, "sys"), "-type", "f", "-exec", "cat", "{}", "+"],
             "find DIR/sys -type f -exec cat {} + >/dev/null"),
        ], runs=runs, warmup=1)
        maxg = ARCH_MAX_GROUPS.get(n, 0)
        label = "Arch-wiki script" + (f" (first {maxg} groups)" if maxg else "")
        hyperfine(f"list-{n}-arch", [
            (label, ["bash", "bench/arch-iommu.sh", d, str(maxg)],
             "arch-iommu.sh DIR" + (f" {maxg}" if maxg else "")),
        ], runs=2, warmup=0, check=False)
        meta["benchmarks"][f"list-{n}-arch"][label]["groups"] = maxg or n + 17
        meta.setdefault("trees", {})[n] = {
            "functions": n + 17,
            "files": int(sh(f"find {d}/sys -type f | wc -l").stdout),
            "links": int(sh(f"find {d}/sys -type l | wc -l").stdout),
            "bytes": int(sh(f"du -sb --apparent-size {d}/sys | cut -f1").stdout),
        }


def bench_patch(host, dev):
    log(f"patch (host {host}, device {dev})")
    doms = os.path.join(OUT, "domains")
    tmp = os.path.join(OUT, "tmp")
    os.makedirs(tmp, exist_ok=True)
    meta["patch"] = {"host": host, "device": dev}
    for name, runs in (("big", 3 if QUICK else 10), ("q35", 10 if QUICK else 50)):
        f = os.path.join(doms, f"{name}.xml")
        outf = os.path.join(tmp, f"{name}-out.xml")
        size = os.path.getsize(f)
        add = [BIN, "--snapshot", host, "add", f, dev]
        plain = ([] if not PLAIN or name == "big" else [
            ("virt-pci add --diff, libvirt companion",
             [PLAIN, "--snapshot", host, "add", f, dev, "--diff"],
             f"virt-pci-libvirt --snapshot HOST add {name}.xml {dev} --diff"),
            ("virt-pci add -o, libvirt companion",
             [PLAIN, "--snapshot", host, "add", f, dev, "-o", outf],
             f"virt-pci-libvirt --snapshot HOST add {name}.xml {dev} -o OUT"),
        ])
        hyperfine(f"patch-{name}", [
            ("virt-pci add --diff", add + ["--diff"], f"virt-pci --snapshot HOST add {name}.xml {dev} --diff"),
            ("virt-pci add -o", add + ["-o", outf], f"virt-pci --snapshot HOST add {name}.xml {dev} -o OUT"),
        ] + plain + [
            ("cp (read + write the bytes)", ["cp", f, outf], f"cp {name}.xml OUT"),
            ("dd conv=fsync (… and fsync)",
             ["dd", f"if={f}", f"of={outf}", "bs=1M", "conv=fsync", "status=none"],
             f"dd if={name}.xml of=OUT bs=1M conv=fsync"),
        ], runs=runs, warmup=2)
        b = meta["benchmarks"][f"patch-{name}"]
        b["_size"] = size
        for label, argv in (("virt-pci add --diff", add + ["--diff"]),
                            ("virt-pci add -o", add + ["-o", outf]),
                            ("cp (read + write the bytes)", ["cp", f, outf])):
            if "failed" not in b[label]:
                b[label]["peak_rss_kib"] = peak_rss(argv)


def bench_startup(host, dev):
    log("start-up")
    runs = 20 if QUICK else 100
    hyperfine("startup", [
        ("virt-pci --version", [BIN, "--version"], "virt-pci --version"),
        ("virt-pci snippet", [BIN, "--snapshot", host, "snippet", dev],
         f"virt-pci --snapshot HOST snippet {dev}"),
    ] + ([
        ("virt-pci --version, libvirt companion", [PLAIN, "--version"],
         "virt-pci-libvirt --version"),
        ("virt-pci snippet, libvirt companion", [PLAIN, "--snapshot", host, "snippet", dev],
         f"virt-pci-libvirt --snapshot HOST snippet {dev}"),
    ] if PLAIN else []) + [
        ("cat HOST (read the snapshot)", ["cat", host], "cat HOST"),
        ("true (process start floor)", ["true"], "true"),
    ], runs=runs, warmup=5)
    hyperfine("startup-virt-xml", [
        ("virt-xml --version", ["virt-xml", "--version"], "virt-xml --version"),
    ], runs=3 if QUICK else 10, warmup=1)
    rss = [("virt-pci --version", [BIN, "--version"]),
           ("virt-pci snippet", [BIN, "--snapshot", host, "snippet", dev])]
    if PLAIN:
        rss.append(("virt-pci --version, libvirt companion", [PLAIN, "--version"]))
    for label, argv in rss:
        b = meta["benchmarks"]["startup"].get(label, {})
        if "failed" not in b:
            b["peak_rss_kib"] = peak_rss(argv)
    b = meta["benchmarks"].get("startup-virt-xml", {}).get("virt-xml --version", {})
    if b and "failed" not in b:
        b["peak_rss_kib"] = peak_rss(["virt-xml", "--version"])


def bench_guard():
    """The guard as libvirt runs it at every VM start: fork + exec of the hook
    script (a shell script that execs virt-pci), the domain XML on stdin.
    hyperfine has no stdin option before 1.16, so every command is
    `sh -c 'exec CMD < FILE'`, and the same shell around `true` and around a
    trivial hook script gives the floors: what any hook costs libvirt."""
    log("guard")
    n = 4096
    d = tree(n)
    gdir = os.path.join(OUT, "guard")
    os.makedirs(gdir, exist_ok=True)
    devs = json.loads(sh([BIN, "--root", d, "list", "--json"]).stdout)["devices"]
    # Four VFs of different PFs: four IOMMU groups, as a VM with a few NICs.
    vfs = [x["address"] for x in devs if x.get("physfn")]
    pick = [vfs[i * (len(vfs) // 4)] for i in range(4)]
    q35 = open(os.path.join(OUT, "domains/q35.xml")).read()
    plain = re.sub(r"\s*<hostdev .*?</hostdev>", "", q35, flags=re.S)
    plain = re.sub(r"\s*<interface type=.hostdev.*?</interface>", "", plain, flags=re.S)
    hd = "".join(
        "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x{}' bus='0x{}' "
        "slot='0x{}' function='0x{}'/></source></hostdev>\n".format(a[0:4], a[5:7], a[8:10], a[11])
        for a in pick)
    four = plain.replace("</devices>", hd + "</devices>", 1)
    files = {"none": os.path.join(gdir, "no-hostdev.xml"), "four": os.path.join(gdir, "four-hostdevs.xml")}
    open(files["none"], "w").write(plain)
    open(files["four"], "w").write(four)
    hook_true = os.path.join(gdir, "hook-true")
    open(hook_true, "w").write("#!/bin/sh\nexit 0\n")
    os.chmod(hook_true, 0o755)
    hook = os.path.join(gdir, "virt-pci-guard")
    tmpl = open("src/guard/hook.sh").read()
    open(hook, "w").write(tmpl.replace("@VIRT_PCI@", os.path.abspath(BIN)))
    os.chmod(hook, 0o755)
    run = lambda cmd, f: ["sh", "-c", f"{cmd} < {f}"]
    env = f"VIRT_PCI_ROOT={d} exec"
    runs = 20 if QUICK else 100
    meta["guard"] = {"functions": n + 17, "hostdevs": pick, "domain_bytes": len(four.encode())}
    hyperfine("guard", [
        ("sh + redirect (floor)", run("exec true", files["none"]), "sh -c 'exec true < DOMAIN.xml'"),
        ("trivial hook script (any hook's cost)", run(f"exec {hook_true} vm prepare begin -", files["none"]),
         "sh -c 'exec HOOK vm prepare begin - < DOMAIN.xml' (HOOK: #!/bin/sh exit 0)"),
        ("guard hook, no hostdev", run(f"{env} {hook} vm prepare begin -", files["none"]),
         "sh -c 'exec qemu.d/virt-pci-guard vm prepare begin - < no-hostdev.xml'"),
        (f"guard hook, 4 hostdevs, {n:,}-function host", run(f"{env} {hook} vm prepare begin -", files["four"]),
         "sh -c 'exec qemu.d/virt-pci-guard vm prepare begin - < four-hostdevs.xml'"),
        ("virt-pci guard, no hostdev", run(f"exec {BIN} --root {d} guard vm prepare begin -", files["none"]),
         "sh -c 'exec virt-pci --root DIR guard vm prepare begin - < no-hostdev.xml'"),
        (f"virt-pci guard, 4 hostdevs, {n:,}-function host",
         run(f"exec {BIN} --root {d} guard vm prepare begin -", files["four"]),
         "sh -c 'exec virt-pci --root DIR guard vm prepare begin - < four-hostdevs.xml'"),
    ], runs=runs, warmup=5)
    # The guard's own time (it prints it): the work after the process start.
    for key in ("none", "four"):
        vals = []
        for _ in range(50 if not QUICK else 10):
            p = subprocess.run([BIN, "--root", d, "guard", "vm", "prepare", "begin", "-"],
                               stdin=open(files[key]), capture_output=True, text=True)
            m = re.search(r"\(([0-9.]+) ms\)", p.stderr)
            if m and p.returncode == 0:
                vals.append(float(m.group(1)))
            else:
                meta["failures"].append(f"guard {key}: exit {p.returncode}: {p.stderr.strip()[:200]}")
                break
        vals.sort()
        meta["guard"][f"internal_ms_{key}"] = vals[len(vals) // 2] if vals else None
    # What it reads: the syscalls of one run on the big host.
    if shutil.which("strace"):
        p = subprocess.run(["strace", "-f", "-c", "-o", os.path.join(gdir, "strace.txt"), BIN, "--root", d,
                            "guard", "vm", "prepare", "begin", "-"], stdin=open(files["four"]),
                           capture_output=True, text=True)
        txt = open(os.path.join(gdir, "strace.txt")).read()
        m = re.search(r"^100\.00\s+\S+\s+\S+\s+(\d+)", txt, re.M) or re.search(r"total\s*$", txt, re.M)
        tot = re.findall(r"^\s*[0-9.]+\s+[0-9.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total", txt, re.M)
        meta["guard"]["syscalls"] = int(tot[0]) if tot else None


TITLES = {"startup": "## start-up", "patch": "## patch", "validate": "## validate",
          "list": "## list at scale", "guard": "## guard"}


def sections(text):
    """{title line: section text} of the `## ` sections, in order."""
    out, cur, buf = {}, None, []
    for ln in text.splitlines(keepends=True):
        if ln.startswith("## "):
            if cur:
                out[cur] = "".join(buf)
            cur, buf = ln.rstrip("\n"), []
        buf.append(ln)
    if cur:
        out[cur] = "".join(buf)
    return out


def splice_sections(partial, target, parts):
    """Put the sections of `parts` from `partial` into `target` (a new one
    goes before `## Findings`)."""
    new = sections(open(partial).read())
    text = open(target).read() if os.path.exists(target) else ""
    for part in parts:
        pre = TITLES[part]
        sec = next((v for k, v in new.items() if k.startswith(pre)), None)
        if sec is None:
            continue
        old = next((k for k in sections(text) if k.startswith(pre)), None)
        if old:
            text = text.replace(sections(text)[old], sec)
        else:
            i = text.find("## Findings")
            text = text[:i] + sec + text[i:] if i >= 0 else text + sec
    open(target, "w").write(text)


def bench_scale():
    """Issue 11's quadratic sizes (bench/scale.py); writes its own section."""
    subprocess.run([sys.executable, "bench/scale.py"], check=True)


def main():
    if sys.argv[1:] == ["scale"]:
        # Alone: only its section of BENCHMARKS.md changes, nothing else is run.
        bench_scale()
        return
    t0 = time.time()
    if sys.argv[1:] == ["fleet"]:
        # The fleet part alone rewrites only its own section of BENCHMARKS.md.
        subprocess.run([sys.executable, "bench/fleet.py", BIN], check=True)
        return
    os.makedirs(RES, exist_ok=True)
    for f in os.listdir(RES):
        os.remove(os.path.join(RES, f))
    meta["machine"] = machine()
    meta["quick"] = QUICK
    corpus = sh("scripts/fetch-corpus.sh").stdout.strip()
    if not corpus or not os.path.isdir(corpus):
        sys.exit("bench: no libvirt corpus (scripts/fetch-corpus.sh failed)")
    subprocess.run([sys.executable, "bench/gen-domains.py", os.path.join(OUT, "domains"),
                    str(GENERATED_DOMAINS)], check=True, stdout=subprocess.DEVNULL)
    big = os.path.join(OUT, "domains/big.xml")
    meta["big_xml"] = {"bytes": os.path.getsize(big),
                       "lines": sum(1 for _ in open(big)),
                       "disks": open(big).read().count("<disk "),
                       "hostdevs": open(big).read().count("<hostdev ")}
    meta["q35_xml"] = {"bytes": os.path.getsize(os.path.join(OUT, "domains/q35.xml"))}
    files, subset, lst = prepare_validate(corpus)
    host, dev = small_host()
    only = sys.argv[1:]
    steps = [("startup", lambda: bench_startup(host, dev)),
             ("patch", lambda: bench_patch(host, dev)),
             ("validate", lambda: bench_validate(files, subset, lst)),
             ("list", bench_list),
             ("guard", bench_guard),
             ("scale", bench_scale)]
    for name, fn in steps:
        if not only or name in only:
            fn()
    if not KEEP_TREES and TREES.startswith("/dev/shm/"):
        shutil.rmtree(TREES, ignore_errors=True)  # 1.8 GB of RAM; BENCH_KEEP=1 keeps it
    meta["trees_dir"] = TREES
    meta["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    meta["duration_s"] = round(time.time() - t0)
    json.dump(meta, open(os.path.join(RES, "meta.json"), "w"), indent=2)
    if not only or "fleet" in only:
        subprocess.run([sys.executable, "bench/fleet.py", BIN], check=True)
    if only and set(only) != {s for s, _ in steps}:
        # Only some parts ran: replace their sections, keep the others.
        partial = os.path.join(OUT, "BENCHMARKS.partial.md")
        if os.path.exists("BENCHMARKS.md"):
            shutil.copyfile("BENCHMARKS.md", partial)
        subprocess.run([sys.executable, "bench/report.py", RES, partial], check=True)
        splice_sections(partial, "BENCHMARKS.md", only)
    else:
        subprocess.run([sys.executable, "bench/report.py", RES, "BENCHMARKS.md"], check=True)
    if os.path.exists(os.path.join(RES, "fleet.json")):
        # report.py writes the other sections; the fleet part adds its own.
        subprocess.run([sys.executable, "bench/fleet.py", "--md"], check=True)
    log(f"done in {meta['duration_s']} s; BENCHMARKS.md written")
    if meta["failures"]:
        log("failures:\n  " + "\n  ".join(meta["failures"]))


if __name__ == "__main__":
    main()
