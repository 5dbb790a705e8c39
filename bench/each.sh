#!/bin/bash
# Run CMD once per file named in LISTFILE, as a pre-commit hook looping over
# virt-xml-validate does (one process per file). Exit status: the last failure.
# usage: each.sh LISTFILE CMD [ARGS...]
list=$1; shift
rc=0
while IFS= read -r f; do "$@" "$f" >/dev/null 2>&1 || rc=$?; done < "$list"
exit $rc
