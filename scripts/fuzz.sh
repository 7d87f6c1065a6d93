#!/usr/bin/env bash
# fuzz.sh: run every fuzz target (func FuzzX(f *testing.F) in a _test.go file
# of the main module) for FUZZTIME each (default 10s), one after another.
# Exits non-zero when any target finds a failure; the failing input is left
# in the package's testdata/fuzz directory as go test does.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

fuzztime=${FUZZTIME:-10s}
fail=0
n=0
# Skip the separate modules under test/conformance and bench.
while IFS= read -r file; do
	dir=$(dirname "$file")
	while IFS= read -r name; do
		n=$((n + 1))
		echo "fuzz ./$dir $name ($fuzztime)"
		if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"; then
			fail=1
		fi
	done < <(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(f \*testing\.F\).*/\1/p' "$file")
done < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	sed 's|^\./||' | grep -vE '^(test/conformance|bench)/' | sort)

echo "fuzz: $n targets run"
exit "$fail"
