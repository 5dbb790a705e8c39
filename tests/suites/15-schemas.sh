#!/bin/bash
# Real output validates against the published JSON Schemas
# (schemas/list.schema.json, schemas/snapshot.schema.json): for every sample,
# `list --json` and `snapshot` read through --snapshot and through a fake
# sysfs tree (--root). Oracle: python3-jsonschema (Debian), Draft 2020-12.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${VIRT_PCI_BIN:-target/debug/virt-pci}
[ -x "$BIN" ] || cargo build -q || exit 1
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  echo "FAIL 15-schemas: python3-jsonschema is not installed (make deps)"; exit 1
fi
base=${TMPDIR:-/tmp}; [ -d /dev/shm ] && [ -w /dev/shm ] && base=/dev/shm   # many small files: tmpfs is much faster
work=$(mktemp -d "$base/virt-pci-schemas.XXXXXX")
trap 'rm -rf "$work"' EXIT
n=0
for s in samples/hosts/*.json; do
  name=$(basename "$s" .json)
  "$BIN" fake-sysfs "$s" "$work/$name" || { echo "FAIL fake-sysfs $name"; exit 1; }
  "$BIN" --snapshot "$s" list --json > "$work/$name.list-snap.json"
  "$BIN" --root "$work/$name" list --json > "$work/$name.list-root.json"
  "$BIN" --root "$work/$name" snapshot > "$work/$name.snap-root.json"
  cp "$s" "$work/$name.snap-file.json"
  # doctor: on the snapshot (unknowns) and on the fake tree, with the first device.
  dev=$("$BIN" --snapshot "$s" list --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["devices"]; print(d[-1]["address"] if d else "")')
  "$BIN" --snapshot "$s" doctor --json $dev > "$work/$name.doctor-snap.json"
  "$BIN" --root "$work/$name" doctor --json $dev > "$work/$name.doctor-root.json"
  n=$((n + 1))
done
python3 - "$work" <<'PY'
import glob, json, sys, jsonschema
work = sys.argv[1]
V = jsonschema.Draft202012Validator
schemas = {k: json.load(open(f"schemas/{k}.schema.json")) for k in ("list", "snapshot", "doctor")}
for s in schemas.values():
    V.check_schema(s)
ok = bad = 0
for f in sorted(glob.glob(f"{work}/*.json")):
    kind = "list" if ".list-" in f else "doctor" if ".doctor-" in f else "snapshot"
    errs = list(V(schemas[kind]).iter_errors(json.load(open(f))))
    if errs:
        bad += 1
        print(f"FAIL {f.rsplit('/', 1)[1]} against {kind}.schema.json: {errs[0].json_path}: {errs[0].message}")
    else:
        ok += 1
# The schemas must be able to fail: a broken document is rejected.
doc = json.load(open(sorted(glob.glob(f"{work}/*.list-snap.json"))[0]))
doc["devices"][0]["vendor_id"] = "8086"
del doc["devices"][0]["bridge"]
if not list(V(schemas["list"]).iter_errors(doc)):
    bad += 1
    print("FAIL list.schema.json accepted a device without `bridge` and with a bad vendor_id")
else:
    ok += 1
doc = json.load(open(sorted(glob.glob(f"{work}/*.doctor-root.json"))[0]))
doc["checks"][0]["status"] = "OK"
if not list(V(schemas["doctor"]).iter_errors(doc)):
    bad += 1
    print("FAIL doctor.schema.json accepted the status OK")
else:
    ok += 1
print(f"15-schemas: {'PASS' if bad == 0 else 'FAIL'}: {ok} passed, {bad} failed")
sys.exit(1 if bad else 0)
PY
