#!/usr/bin/env python3
"""`make bench`, fleet part: inventory and placement over 1,000 generated
host snapshots (64–4,096 functions each, bench/gen-fleet.py) in one call,
and the same over 125, 250 and 500 of them (linearity).

usage: bench/fleet.py [BIN]   (default target/release/virt-pci)

Writes target/bench/results/fleet.json and the "## fleet" section of
BENCHMARKS.md (between its markers; the rest of the file is left alone, so
this part can run on its own). Whole-process wall times from hyperfine (-N),
CPU time (user+sys) from /usr/bin/time over the same commands, and the
machine's load average at start and end: on a shared machine, wall time
measures the neighbours too. Whether the target is met is computed from
the run (verdict()), for the wall time and for CPU time / cores.
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
BIN = next((a for a in sys.argv[1:] if not a.startswith("--")), "target/release/virt-pci")
OUT = "target/bench/fleet"
RES = "target/bench/results"
SIZES = [125, 250, 500, 1000]
RUNS = int(os.environ.get("BENCH_FLEET_RUNS", "5"))


def log(*a):
    print("bench fleet:", *a, file=sys.stderr, flush=True)


def gen():
    full = os.path.join(OUT, "hosts-1000")
    stamp = os.path.join(full, ".stamp")
    want = str(os.path.getmtime("bench/gen-fleet.py"))
    if not (os.path.exists(stamp) and open(stamp).read() == want):
        log("generating 1,000 host snapshots")
        subprocess.run(["rm", "-rf", full], check=True)
        r = subprocess.run([sys.executable, "bench/gen-fleet.py", full, "1000"], check=True,
                           capture_output=True, text=True)
        open(os.path.join(full, "meta.txt"), "w").write(r.stdout)
        open(stamp, "w").write(want)
    files = sorted(f for f in os.listdir(full) if f.endswith(".json"))
    for n in SIZES[:-1]:
        d = os.path.join(OUT, f"hosts-{n}")
        subprocess.run(["rm", "-rf", d], check=True)
        os.makedirs(d)
        for f in files[:n]:
            os.symlink(os.path.abspath(os.path.join(full, f)), os.path.join(d, f))
    funcs = {}
    for n in SIZES:
        d = os.path.join(OUT, f"hosts-{n}")
        per_host, size = [], 0
        names = sorted(x for x in os.listdir(d) if x.endswith(".json"))
        for f in names:
            p = os.path.realpath(os.path.join(d, f))
            size += os.path.getsize(p)
            per_host.append(len(json.load(open(p))["devices"]))
        # What the issue asks for, checked rather than assumed.
        assert len(names) == n, f"{d}: {len(names)} hosts, not {n}"
        assert 64 <= min(per_host) and max(per_host) <= 4096, (min(per_host), max(per_host))
        funcs[n] = {"functions": sum(per_host), "bytes": size, "hosts": len(names),
                    "min_per_host": min(per_host), "max_per_host": max(per_host)}
    return full, funcs


def domain(full):
    """A domain with the first generated host's Turing card (4 functions)."""
    h = json.load(open(os.path.join(full, "host-0000.json")))
    gpu = next(d["address"] for d in h["devices"] if d["device_id"] == "0x1e84")
    bus = gpu.split(":")[1]
    dom = gpu.split(":")[0]
    hd = "".join(
        f"<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x{dom}' "
        f"bus='0x{bus}' slot='0x00' function='0x{f}'/></source></hostdev>" for f in range(4))
    p = os.path.join(OUT, "vm.xml")
    open(p, "w").write(f"<domain type='kvm'><name>bench</name><devices>{hd}</devices></domain>\n")
    return p, os.path.join(full, "host-0000.json")


def cpu(argv):
    p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    u, s, m = p.stderr.strip().splitlines()[-1].split()
    return float(u) + float(s), int(m)


def hyperfine(cmds):
    out = os.path.join(OUT, "hf.json")
    argv = ["hyperfine", "-N", "--warmup", "1", "--runs", str(RUNS), "--export-json", out]
    for label, a in cmds:
        argv += ["-n", label, subprocess.list2cmdline(a)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return {r["command"]: r for r in json.load(open(out))["results"]}


def main():
    os.makedirs(RES, exist_ok=True)
    load0 = open("/proc/loadavg").read().split()[:3]
    full, funcs = gen()
    vm, src = domain(full)
    rows = []
    for n in SIZES:
        d = os.path.join(OUT, f"hosts-{n}")
        cmds = [
            (f"inventory --class gpu, {n} hosts", [BIN, "inventory", d, "--class", "gpu"]),
            (f"place, {n} hosts", [BIN, "--snapshot", src, "place", vm, d]),
            (f"inventory --json, {n} hosts", [BIN, "inventory", d, "--json"]),
        ]
        for label, a in cmds:
            subprocess.run(a, stdout=subprocess.DEVNULL, check=a[1] != "--snapshot" or None)
        hf = hyperfine(cmds)
        for label, a in cmds:
            c, rss = cpu(a)
            rows.append({"label": label, "hosts": n, "median_s": hf[label]["median"],
                         "min_s": hf[label]["min"], "cpu_s": c, "peak_rss_kib": rss,
                         "command": " ".join(a).replace(ROOT + "/", "")})
            log(f"{label}: median {hf[label]['median']:.3f} s, cpu {c:.2f} s")
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
            "nproc": os.cpu_count(), "load_start": load0,
            "load_end": open("/proc/loadavg").read().split()[:3],
            "virt_pci": subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip(),
            "sizes": funcs, "rows": rows}
    json.dump(meta, open(os.path.join(RES, "fleet.json"), "w"), indent=2)
    write_md(meta)


def verdict(m):
    """The target, judged from this run's numbers (never written by hand).

    Wall time on a shared machine measures the neighbours too, so the
    verdict also gives the wall time the CPU time allows on this machine's
    cores when they are idle (CPU / cores: the hosts are read on all cores,
    bench/fleet.py's commands spend >95 % of their CPU time there)."""
    f = {str(k): v for k, v in m["sizes"].items()}
    out = []
    for cmd in ("inventory --class gpu", "place"):
        rows = [r for r in m["rows"] if r["label"].split(",")[0] == cmd]
        big = next((r for r in rows if r["hosts"] == max(SIZES)), None)
        if not big:
            continue
        quiet = big["cpu_s"] / m["nproc"]
        per = [1e6 * r["cpu_s"] / f[str(r["hosts"])]["functions"] for r in rows]
        spread = max(per) / min(per) if min(per) > 0 else float("inf")
        linear = spread <= 1.25
        met_wall = big["median_s"] <= 1.0
        met_quiet = quiet <= 1.0
        word = ("met" if met_wall else
                "met on idle cores, not in this run's wall time" if met_quiet else "not met")
        out.append(
            f"- `{cmd}`, {big['hosts']:,} hosts: **{word}** (target ≤ 1 s). Wall (median, load "
            f"{' '.join(m['load_start'])}): {big['median_s']:.2f} s; CPU (user+sys): "
            f"{big['cpu_s']:.2f} s, i.e. {quiet:.2f} s of wall on {m['nproc']} idle cores. "
            f"CPU per 1,000 functions from {min(SIZES)} to {max(SIZES)} hosts: "
            f"{', '.join(f'{x:.2f}' for x in per)} ms: "
            + ("linear" if linear else f"not linear (spread {spread:.2f}×)") + ".")
    return out


def write_md(m):
    f = {str(k): v for k, v in m["sizes"].items()}
    lines = ["<!-- fleet:begin (written by bench/fleet.py) -->", "## fleet: 1,000 host snapshots", "",
             f"Run {m['date']} on {m['cpu']} ({m['nproc']} CPUs), {m['virt_pci']}; load average "
             f"{' '.join(m['load_start'])} at start, {' '.join(m['load_end'])} at end. Hosts from "
             "`bench/gen-fleet.py` (64–4,096 functions each, log-uniform; GPUs, NVMe, SR-IOV NICs "
             f"with a group per VF): 1,000 hosts = {f['1000']['functions']:,} functions "
             f"({f['1000'].get('min_per_host', 64)}–{f['1000'].get('max_per_host', 4096)} per host), "
             f"{f['1000']['bytes'] / 1e6:.0f} MB of JSON. Target (issue 16): ≤ 1 s for 1,000 hosts in one call, "
             "linear in the number of hosts. Wall: hyperfine median; CPU: user+sys of one run "
             "(the work itself, less sensitive to neighbours on a shared machine).", "",
             "| command | hosts | functions | wall (median) | CPU | CPU per 1,000 functions | peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for r in m["rows"]:
        fn = f[str(r["hosts"])]["functions"]
        lines.append(f"| `{r['label'].split(',')[0]}` | {r['hosts']} | {fn:,} | {r['median_s']:.2f} s | "
                     f"{r['cpu_s']:.2f} s | {1e6 * r['cpu_s'] / fn:.2f} ms | {r['peak_rss_kib'] / 1024:.0f} MiB |")
    lines += ["", "Commands: " + "; ".join(sorted({f"`{r['command']}`" for r in m["rows"] if r['hosts'] == 1000})), ""]
    lines += verdict(m) + ["", "<!-- fleet:end -->"]
    md = open("BENCHMARKS.md").read()
    block = "\n".join(lines) + "\n"
    if "<!-- fleet:begin" in md:
        md = re.sub(r"<!-- fleet:begin.*?<!-- fleet:end -->\n", lambda _: block, md, flags=re.S)
    elif "\n## Findings" in md:
        md = md.replace("\n## Findings", "\n" + block + "\n## Findings", 1)
    else:
        md += "\n" + block
    open("BENCHMARKS.md", "w").write(md)
    log("BENCHMARKS.md: fleet section written")


if __name__ == "__main__":
    if "--md" in sys.argv:  # after bench/report.py rewrote BENCHMARKS.md
        write_md(json.load(open(os.path.join(RES, "fleet.json"))))
    else:
        main()
