#!/bin/bash
# `virt-pci validate` over libvirt 9.0's own test data (every tests/*data dir):
#  - no error on any file libvirt accepts (not *-invalid.xml, no matching .err);
#  - each expected failure about PCI hostdev addresses is flagged with our check:
#    hostdev-pci-duplicate (VP030), pci-{bus,domain,slot,function}-invalid (VP021),
#    440fx-ide-address-conflict (VP031), boot-dev+order (VP033);
#  - the JSON report matches schemas/validate.schema.json.
# Prints the counts. Warnings (e.g. the same device in several test domains,
# VP040) are counted, not failures.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=$(scripts/fetch-corpus.sh)
cargo build -q
BIN=${CARGO_TARGET_DIR:-target}/debug/virt-pci
out=$(mktemp); trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
set +e
"$BIN" validate --format json "$corpus"/tests/*data >"$out"
rc=$?
set -e
end=$(date +%s.%N)
# Every kind of field (related places, host) for the schema check.
fixtures=$(mktemp); trap 'rm -f "$out" "$fixtures"' EXIT
"$BIN" --snapshot tests/fixtures/validate/host.json validate --format json tests/fixtures/validate >"$fixtures" || true
python3 - "$out" "$corpus/tests" "$rc" "$start" "$end" "$fixtures" <<'PY'
import json, os, sys, glob, collections
report = json.load(open(sys.argv[1]))
tests, rc = sys.argv[2], int(sys.argv[3])
secs = float(sys.argv[5]) - float(sys.argv[4])

def expected_failure(path):
    d, f = os.path.split(path)
    base = f[:-4]
    return f.endswith("-invalid.xml") or bool(glob.glob(os.path.join(d, base + ".err"))
                                              or glob.glob(os.path.join(d, base + ".*.err")))

by_file = collections.defaultdict(list)
for d in report["diagnostics"]:
    by_file[os.path.relpath(d["file"], tests)].append(d)
fail = 0
false_errors = []
expected_total = 0
for f, ds in sorted(by_file.items()):
    errs = [d for d in ds if d["severity"] == "error"]
    if errs and not expected_failure(os.path.join(tests, f)):
        false_errors.append((f, errs))
all_xml = glob.glob(os.path.join(tests, "*data", "**", "*.xml"), recursive=True)
accepted = [p for p in all_xml if not expected_failure(p)]
expected = [p for p in all_xml if expected_failure(p)]
must_flag = {
    "qemuxml2argvdata/hostdev-pci-duplicate.xml": "VP030",
    "qemuxml2argvdata/pci-bus-invalid.xml": "VP021",
    "qemuxml2argvdata/pci-domain-invalid.xml": "VP021",
    "qemuxml2argvdata/pci-slot-invalid.xml": "VP021",
    "qemuxml2argvdata/pci-function-invalid.xml": "VP021",
    # the guest side, as libvirt's QEMU driver refuses it (src/domain/guest.rs)
    "qemuxml2argvdata/440fx-ide-address-conflict.xml": "VP031",
    "qemuxml2argvdata/boot-dev+order.xml": "VP033",
    # mdevctl's output captured under a .xml name: not XML at all (an empty
    # file, and several roots). A .xml file that is not well-formed is an
    # error, never skipped.
    "nodedevmdevctldata/mdevctl-list-empty.out.xml": "VP001",
    "nodedevmdevctldata/mdevctl-list-multiple.out.xml": "VP001",
}
flagged = 0
for f, code in must_flag.items():
    codes = [d["code"] for d in by_file.get(f, []) if d["severity"] == "error"]
    if code in codes:
        flagged += 1
        print(f"  flagged  {f}: {code}")
    else:
        print(f"FAIL: {f} not flagged with {code} (got {codes})")
        fail += 1
false_errors = [(f, e) for f, e in false_errors if f not in must_flag]
for f, errs in false_errors:
    for e in errs:
        print(f"FAIL: false error on accepted file {f}:{e['line']}:{e['column']}: {e['code']} {e['message']}")
    fail += 1
if rc != 1:
    print(f"FAIL: exit code {rc}, expected 1 (the expected failures are errors)")
    fail += 1
try:
    import jsonschema
except ImportError:
    print("FAIL: python3-jsonschema missing (make deps)"); sys.exit(1)
schema = json.load(open("schemas/validate.schema.json"))
try:
    jsonschema.validate(report, schema)
    fx = json.load(open(sys.argv[6]))
    jsonschema.validate(fx, schema)
    assert fx.get("host") and any(d.get("related") for d in fx["diagnostics"])
    jsonschema.Draft202012Validator.check_schema(schema)
    # The schema must be able to fail.
    fx["diagnostics"][0]["code"] = "E12"
    if not list(jsonschema.Draft202012Validator(schema).iter_errors(fx)):
        raise jsonschema.ValidationError("a diagnostic with code E12 was accepted")
    print("JSON reports (corpus, fixtures) match schemas/validate.schema.json")
except jsonschema.ValidationError as e:
    print(f"FAIL: JSON report does not match the schema: {e.message}")
    fail += 1
codes = collections.Counter((d["code"], d["severity"]) for d in report["diagnostics"])
print(f"corpus: {report['files_checked']} files checked in {secs:.2f}s "
      f"({report['files_skipped']} not domain/hostdev XML), "
      f"{len(accepted)} accepted by libvirt, {len(expected)} expected failures")
print(f"accepted files with a false error: {len(false_errors)}")
print(f"expected PCI-hostdev failures flagged: {flagged}/{len(must_flag)}")
print("diagnostics: " + ", ".join(f"{c} {s}: {n}" for (c, s), n in sorted(codes.items())))
print("PASS" if fail == 0 else f"FAIL ({fail})")
sys.exit(1 if fail else 0)
PY
