#!/usr/bin/env python3
"""The code's shape, checked from the repository (`make lint` runs it).

Issue 12 set three limits that keep every decision in one readable place:

* no file under src/ longer than 600 lines;
* no function longer than 100 lines (from its `fn` line to its closing brace);
* `cfg(feature = "libvirt")` in src/cli/ only at the one hand-over point
  (src/cli/companion.rs), so the rest of the command line is the same code
  with and without libvirt.

The function scanner is a brace counter that ignores string and char literals
and comments; it is deliberately simple (no Rust parser is a dependency of
this repository) and errs on the side of reporting.

Usage: scripts/check-shape.py [SRC_DIR]   (exit 1 on a violation)
"""
import os
import re
import sys

MAX_FILE = 600
MAX_FN = 100
HANDOVER = os.path.join("src", "cli", "companion.rs")

FN_RE = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
    r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)"
)


def strip(line, state):
    """Return `line` without literals and comments; `state` carries an open
    block comment or raw/plain string across lines."""
    out = []
    i = 0
    while i < len(line):
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"] = False
            i = j + 2
            continue
        if state["str"]:
            end = state["str"]
            j = line.find(end, i)
            if end == '"':
                while j > 0 and line[j - 1] == "\\" and not line[i:j].endswith("\\\\"):
                    j = line.find(end, j + 1)
            if j < 0:
                return "".join(out)
            state["str"] = None
            i = j + len(end)
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["str"] = '"' + m.group(1)
            i += len(m.group(0))
            continue
        if c == '"':
            state["str"] = '"'
            i += 1
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def long_functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    state = {"block": False, "str": None}
    code = [strip(l, state) for l in lines]
    found = []
    for start, text in enumerate(code):
        m = FN_RE.match(text)
        if not m:
            continue
        depth, seen = 0, False
        for end in range(start, len(code)):
            for ch in code[end]:
                if ch == "{":
                    depth += 1
                    seen = True
                elif ch == "}":
                    depth -= 1
            if seen and depth <= 0:
                break
            if not seen and code[end].rstrip().endswith(";"):
                break
        if seen and end - start + 1 > MAX_FN:
            found.append((start + 1, m.group(1), end - start + 1))
    return found


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    problems = []
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            n = sum(1 for _ in open(path, encoding="utf-8"))
            if n > MAX_FILE:
                problems.append(f"{path}: {n} lines (at most {MAX_FILE}); split it along its seams")
            for line, name, length in long_functions(path):
                problems.append(
                    f"{path}:{line}: fn {name} is {length} lines (at most {MAX_FN}); "
                    "split it into named steps"
                )
            rel = os.path.relpath(path)
            if os.sep + "cli" + os.sep in path and not rel.endswith(HANDOVER):
                for i, l in enumerate(open(path, encoding="utf-8"), 1):
                    if 'cfg(feature = "libvirt")' in l or "cfg(not(feature = \"libvirt\"))" in l:
                        problems.append(
                            f"{path}:{i}: libvirt feature gate outside the hand-over point "
                            f"({HANDOVER}); give the library a face that exists in both builds"
                        )
    for p in problems:
        print(p)
    if problems:
        print(f"check-shape: {len(problems)} problem(s)")
        return 1
    print("check-shape: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
