#!/bin/bash
# The many-host JSON against its schemas (schemas/inventory, mapping,
# placement .schema.json): inventory of all 25 sample hosts, the sample
# mapping, and placements of every sample domain across them. Oracle:
# python3-jsonschema (Debian), Draft 2020-12.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${VIRT_PCI_BIN:-target/debug/virt-pci}
[ -x "$BIN" ] || cargo build -q || exit 1
if ! python3 -c 'import jsonschema' 2>/dev/null; then
  echo "FAIL 16-fleet-schemas: python3-jsonschema is not installed (make deps)"; exit 1
fi
unset LIBVIRT_DEFAULT_URI VIRT_PCI_ROOT
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$BIN" inventory samples/hosts --json > "$work/inventory.json" || { echo "FAIL inventory"; exit 1; }
"$BIN" inventory samples/hosts --class gpu --status clean --json > "$work/inventory-gpu.json" || { echo "FAIL inventory filter"; exit 1; }
n=0
for d in samples/domains/*.xml; do
  for src in samples/hosts/004-*.json samples/hosts/018-*.json; do
    # exit 1 (runs nowhere) still prints a placement; 2 is a refused input
    # (a hostdev the source host lacks), which prints none.
    "$BIN" --snapshot "$src" place "$d" samples/hosts --mapping samples/mappings/gpus.json --json > "$work/place-$n.json" 2>/dev/null
    [ $? -le 1 ] || rm -f "$work/place-$n.json"
    n=$((n + 1))
  done
done
python3 - "$work" <<'PY'
import glob, json, sys, jsonschema
work = sys.argv[1]
V = jsonschema.Draft202012Validator
def schema(k):
    s = json.load(open(f"schemas/{k}.schema.json"))
    V.check_schema(s)
    return V(s)
inv, mapping, place = schema("inventory"), schema("mapping"), schema("placement")
checked = 0
for f in glob.glob(f"{work}/inventory*.json"):
    for e in inv.iter_errors(json.load(open(f))):
        sys.exit(f"FAIL {f}: {e.message} at {list(e.absolute_path)}")
    checked += 1
for e in mapping.iter_errors(json.load(open("samples/mappings/gpus.json"))):
    sys.exit(f"FAIL samples/mappings/gpus.json: {e.message}")
checked += 1
# The schema must reject what virt-pci rejects.
bad = {"format": "virt-pci-mapping", "version": 1, "devices": {"g": {"hosts": {"h": {"path": "2b:00", "id": "10de-1e84"}}}}}
if mapping.is_valid(bad):
    sys.exit("FAIL mapping schema accepts a malformed id")
places = glob.glob(f"{work}/place-*.json")
if len(places) < 4:
    sys.exit(f"FAIL only {len(places)} placements were printed")
for f in places:
    for e in place.iter_errors(json.load(open(f))):
        sys.exit(f"FAIL {f}: {e.message} at {list(e.absolute_path)}")
    checked += 1
print(f"16-fleet-schemas: {checked} documents valid")
PY
