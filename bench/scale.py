#!/usr/bin/env python3
"""`make bench` part "scale" (scripts/bench.sh scale): the input sizes at
which issue 11 found quadratic paths, timed with hyperfine (3 runs each) and
written into BENCHMARKS.md between the `scale:begin`/`scale:end` markers
(below "## Findings", which bench/report.py keeps on a full run), plus
target/bench/results/scale.json.

  validate, 8,000 identical hostdevs (1.1 MB)    was 7.7 s
  validate, one element with 200,000 attributes  was > 60 s (now refused: > 256 attributes)
  list --tree, 100,000 functions (snapshot)      was > 120 s
  snapshot --from-listing, 20,000 PCI domains    was 48 s

The claim is "linear": each row is also run at a tenth of the size, and the
ratio of the two medians is shown (≈ 10 when linear, ≈ 100 when quadratic).
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
BIN = os.environ.get("BENCH_BIN", "target/release/virt-pci")
OUT = "target/bench/scale"
RES = "target/bench/results"
os.makedirs(OUT, exist_ok=True)
os.makedirs(RES, exist_ok=True)

for factor, d in ((1, OUT), (0.1, OUT + "/tenth")):
    subprocess.run([sys.executable, "bench/gen-scale.py", d, str(factor)], check=True)

ROWS = [
    ("validate, 8,000 identical hostdevs", "7.7 s", ["validate", "{d}/hostdevs-{n}.xml"], 8000, (1,)),
    ("validate, 200,000 attributes on one element (refused)", "> 60 s",
     ["validate", "{d}/attrs-{n}.xml"], 200000, (1,)),
    ("list --tree, 100,000 functions", "> 120 s",
     ["--snapshot", "{d}/devices-{n}.json", "list", "--tree"], 100000, (0,)),
    ("snapshot --from-listing, 20,000 PCI domains", "48 s",
     ["snapshot", "--from-listing", "{d}/domains-{n}.txt"], 20000, (0,)),
]


def time_it(argv, ok):
    p = subprocess.run([BIN] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode not in ok:
        return None, f"exit {p.returncode}: {p.stderr.strip()[:200]}"
    out = os.path.join(OUT, "hf.json")
    hf = ["hyperfine", "-N", "--style", "none", "--runs", "3", "--warmup", "1", "-i",
          "--export-json", out, subprocess.list2cmdline([BIN] + argv)]
    subprocess.run(hf, check=True, capture_output=True)
    return json.load(open(out))["results"][0]["median"], None


def fmt(s):
    return "–" if s is None else (f"{s:.2f} s" if s >= 1 else f"{s * 1000:.0f} ms")


results = []
for name, before, argv, n, ok in ROWS:
    full = [a.format(d=OUT, n=n) for a in argv]
    tenth = [a.format(d=OUT + "/tenth", n=max(1, n // 10)) for a in argv]
    t_full, err = time_it(full, ok)
    t_tenth, err2 = time_it(tenth, ok)
    results.append({"name": name, "before": before, "full": t_full, "tenth": t_tenth,
                    "error": err or err2, "command": "virt-pci " + " ".join(argv).format(d="…", n=n)})
    print(f"scale: {name}: {fmt(t_full)} (tenth {fmt(t_tenth)})", file=sys.stderr)
json.dump(results, open(os.path.join(RES, "scale.json"), "w"), indent=2)

load = open("/proc/loadavg").read().split()[:3]
lines = ["<!-- scale:begin (bench/scale.py writes this section) -->",
         "### Scale: the sizes that were quadratic (issue 11)", "",
         f"`scripts/bench.sh scale`; median of 3 runs; {os.cpu_count()} cores, load average "
         f"{' '.join(load)} when it ran. The last column is full size ÷ a tenth of it: "
         "≈ 10 is linear, ≈ 100 quadratic. \"before\" is what issue 11 measured (its machine).", "",
         "| input | before | now | a tenth of it | ratio |", "|---|---|---|---|---|"]
for r in results:
    ratio = (f"{r['full'] / r['tenth']:.1f}" if r["full"] and r["tenth"] else "–")
    now = fmt(r["full"]) if not r["error"] else f"FAILED: {r['error']}"
    lines.append(f"| {r['name']} | {r['before']} | {now} | {fmt(r['tenth'])} | {ratio} |")
lines.append("<!-- scale:end -->")
section = "\n".join(lines) + "\n"

md = open("BENCHMARKS.md").read()
b, e = md.find("<!-- scale:begin"), md.find("<!-- scale:end -->")
if b >= 0 and e >= 0:
    md = md[:b] + section + md[e + len("<!-- scale:end -->\n"):]
else:
    md = md.rstrip("\n") + "\n\n" + section
open("BENCHMARKS.md", "w").write(md)
print("scale: BENCHMARKS.md updated", file=sys.stderr)
