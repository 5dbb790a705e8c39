#!/bin/bash
# Real output validates against the published JSON Schemas (schemas/*.json),
# for every command that prints JSON, over every sample host:
#   list --json (through --snapshot and through a fake sysfs tree, --root),
#   list --tree --json, list --json with filters, snapshot, show --json and
#   check --json (first endpoint of every group: ok and blocked plans),
#   detach/reattach/reset/check --try --dry-run --json (plans and refusals),
#   an executed reset on the fake tree (outcome), usb --json, hostdevs
#   --json and prepare/release --dry-run --json over samples/domains,
#   add/remove --diff --json, and validate --format json.
# Oracle: python3-jsonschema (Debian), Draft 2020-12; schemas refer to each
# other by relative $ref (plan.schema.json, list.schema.json#/$defs/device).
# Each schema must also reject a broken document (the oracle can say no).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${VIRT_PCI_BIN:-target/debug/virt-pci}
[ -x "$BIN" ] || cargo build -q || exit 1
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  echo "FAIL 15-schemas: python3-jsonschema is not installed (make deps)"; exit 1
fi
export VIRT_PCI_NO_COMPANION=1 NO_COLOR=1
unset LIBVIRT_DEFAULT_URI VIRT_PCI_ROOT
base=${TMPDIR:-/tmp}; [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm   # many small files: tmpfs is much faster
work=$(mktemp -d "$base/virt-pci-schemas.XXXXXX")
trap 'rm -rf "$work"' EXIT
bad=0
# out KIND NAME CMD...: run, keep stdout as NAME.KIND.json; exit 0 or 1 only
# (1: blocked or refused, which still prints JSON).
out() {
  local kind=$1 name=$2; shift 2
  "$@" > "$work/$name.$kind.json" 2>/dev/null
  local rc=$?
  if [ "$rc" -gt 1 ] || [ ! -s "$work/$name.$kind.json" ]; then
    echo "FAIL $name: \`$*\` exited $rc without JSON"; bad=$((bad + 1)); rm -f "$work/$name.$kind.json"
  fi
}
for s in samples/hosts/*.json; do
  name=$(basename "$s" .json)
  "$BIN" fake-sysfs "$s" "$work/$name" || { echo "FAIL fake-sysfs $name"; exit 1; }
  out list "$name.snap" "$BIN" --snapshot "$s" list --json
  out list "$name.root" "$BIN" --root "$work/$name" list --json
  out list "$name.filtered" "$BIN" --snapshot "$s" list --json --class 03
  out list-tree "$name.snap" "$BIN" --snapshot "$s" list --tree --json
  out list-tree "$name.vendor" "$BIN" --snapshot "$s" list --tree --json --vendor 8086
  out snapshot "$name.root" "$BIN" --root "$work/$name" snapshot
  cp "$s" "$work/$name.file.snapshot.json"
  # The first PCI endpoint of every group (or every function without groups).
  firsts=$(python3 - "$work/$name.snap.list.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
eps = {x["address"] for x in d["devices"] if x["kind"] == "endpoint"}
seen = []
for g in d["groups"]:
    m = [a for a in g["members"] if a in eps]
    if m:
        seen.append(m[0])
if not d["groups"]:
    seen = sorted(eps)
# Enough for ok and blocked plans, not every group of a 90-device server.
print(" ".join(seen[:6] + seen[6:][-2:]))
PY
)
  i=0
  for a in $firsts; do
    i=$((i + 1))
    out show "$name.$i" "$BIN" --snapshot "$s" show "$a" --json
    out check "$name.$i" "$BIN" --snapshot "$s" check "$a" --json
    if [ "$i" -le 4 ]; then
      out action "$name.detach.$i" "$BIN" --snapshot "$s" detach "$a" --dry-run --json
      out action "$name.reattach.$i" "$BIN" --snapshot "$s" reattach "$a" --dry-run --json
      out action "$name.try.$i" "$BIN" --snapshot "$s" check "$a" --try --dry-run --json
    fi
    if [ "$i" -eq 1 ]; then
      # Executed on the fake tree: the outcome part of the document.
      out action "$name.reset-run" "$BIN" --root "$work/$name" reset "$a" --force --json
    fi
  done
  for d in samples/domains/*.xml; do
    dn=$(basename "$d" .xml)
    out hostdevs "$name.$dn" "$BIN" --snapshot "$s" hostdevs "$d" --json
  done
  for d in samples/domains/truenas-hba.xml samples/domains/bad-rtx2070-half-group.xml; do
    dn=$(basename "$d" .xml)
    out action "$name.prepare.$dn" "$BIN" --snapshot "$s" prepare "$d" --dry-run --json
    out action "$name.release.$dn" "$BIN" --snapshot "$s" release "$d" --dry-run --json
  done
  out validate "$name" "$BIN" --snapshot "$s" validate --format json samples/domains
  # add/remove --json (nothing written): the first endpoint into a sample
  # domain (forced: listings leave facts unverified), and every hostdev out.
  for a in $firsts; do
    out edit "$name.add" "$BIN" --snapshot "$s" add samples/domains/win11-q35.xml "$a" --force --diff --json
    break
  done
  out edit "$name.remove" "$BIN" --snapshot "$s" remove samples/domains/truenas-hba.xml --all --diff --json
  # doctor: on the snapshot (unknowns) and on the fake tree, with the last device.
  dev=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["devices"]; print(d[-1]["address"] if d else "")' "$work/$name.snap.list.json")
  "$BIN" --snapshot "$s" doctor --json $dev > "$work/$name.snap.doctor.json"
  "$BIN" --root "$work/$name" doctor --json $dev > "$work/$name.root.doctor.json"
done
# usb: the sample with USB data, every bus and a device id.
usb=samples/hosts/013-b560-tigerlake-rx7600-reset-usb.json
for b in 1 2; do out usb "013.bus$b" "$BIN" --snapshot "$usb" usb "$b" --json; done
out usb "013.id" "$BIN" --snapshot "$usb" usb 05e3:0608 --json
python3 - "$work" "$bad" <<'PY'
import copy, glob, json, sys
work, bad = sys.argv[1], int(sys.argv[2])
V = jsonschema = __import__("jsonschema")
V = jsonschema.Draft202012Validator
kinds = ["list", "list-tree", "snapshot", "show", "check", "action", "usb", "hostdevs", "validate", "doctor", "edit", "plan"]
schemas = {k: json.load(open(f"schemas/{k}.schema.json")) for k in kinds}
for s in schemas.values():
    V.check_schema(s)
try:  # jsonschema >= 4.18
    from referencing import Registry, Resource
    reg = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    def validator(k):
        return V(schemas[k], registry=reg)
except ImportError:  # Debian bookworm's 4.10
    store = {s["$id"]: s for s in schemas.values()}
    def validator(k):
        return V(schemas[k], resolver=jsonschema.RefResolver.from_schema(schemas[k], store=store))
vals = {k: validator(k) for k in kinds}
ok = 0
count = {}
for f in sorted(glob.glob(f"{work}/*.json")):
    kind = f.rsplit("/", 1)[1].rsplit(".", 2)[-2]
    doc = json.load(open(f))
    errs = sorted(vals[kind].iter_errors(doc), key=lambda e: e.json_path)
    if errs:
        bad += 1
        print(f"FAIL {f.rsplit('/', 1)[1]} against {kind}.schema.json: {errs[0].json_path}: {errs[0].message}")
    else:
        ok += 1
        count[kind] = count.get(kind, 0) + 1
def first(kind, pred=lambda d: True):
    for f in sorted(glob.glob(f"{work}/*.{kind}.json")):
        d = json.load(open(f))
        if pred(d):
            return d
    raise SystemExit(f"FAIL 15-schemas: no {kind} document to break")
# Every command was seen, and every schema can say no.
for k in kinds[:-1]:
    if not count.get(k):
        bad += 1
        print(f"FAIL no valid {k} document was produced")
def mutations():
    d = first("list", lambda d: d["groups"]); d["devices"][0]["vendor_id"] = "8086"; del d["devices"][0]["bridge"]; yield "list", d
    d = first("list", lambda d: d["groups"]); d["groups"][0]["can_pass"] = {"verdict": "yes"}; yield "list", d
    d = first("list-tree", lambda d: d["roots"]); del d["roots"][0]["devices"][0]["children"]; yield "list-tree", d
    d = first("show", lambda d: d["plan"]["groups"] and d["plan"]["groups"][0]["members"])
    d["plan"]["groups"][0]["members"][0]["role"] = "leaves"; yield "show", d
    d = first("check"); d["verdict"] = "fine"; yield "check", d
    d = first("check"); del d["reset"]["summary"]; yield "check", d
    d = first("action", lambda d: d["plan"]["steps"]); d["plan"]["steps"][0]["op"] = "unbind"; yield "action", d
    d = first("action", lambda d: "outcome" in d); del d["outcome"]["done"]; yield "action", d
    d = first("usb"); d[0]["buses"][0]["devices"] = [{"bus": 1}]; yield "usb", d
    d = first("action", lambda d: d["plan"]["refusals"]); d["plan"]["refusals"][0]["forceable"] = "no"; yield "action", d
    d = first("hostdevs", lambda d: any(h["present"] for h in d["hostdevs"]))
    next(h for h in d["hostdevs"] if h["present"]).pop("device"); yield "hostdevs", d
    d = first("snapshot"); d["format"] = "other"; yield "snapshot", d
    d = first("validate"); d["errors"] = -1; yield "validate", d
    d = first("doctor"); d["checks"][0]["status"] = "OK"; yield "doctor", d
    d = first("edit", lambda d: d["added"]); d["added"][0] = "2b:00.0"; yield "edit", d
    d = first("edit"); del d["before"]; yield "edit", d
for kind, d in mutations():
    if list(vals[kind].iter_errors(d)):
        ok += 1
    else:
        bad += 1
        print(f"FAIL {kind}.schema.json accepted a broken document")
print("15-schemas: " + ", ".join(f"{k} {n}" for k, n in sorted(count.items())))
print(f"15-schemas: {'PASS' if bad == 0 else 'FAIL'}: {ok} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
