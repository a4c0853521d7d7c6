#!/usr/bin/env bash
# Runs every Go fuzz target in the module, one at a time, each for $FUZZTIME (default 10s),
# with $FUZZPARALLEL workers (default: all cores).
# A crash fails the run; Go writes the failing input under the package's testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
# Minimising a large interesting input can eat a whole short run; keep it bounded.
minimize=${FUZZMINIMIZETIME:-5s}
parallel=${FUZZPARALLEL:-$(nproc)}
status=0
while IFS= read -r file; do
	pkg="./$(dirname "$file")"
	for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)\(' "$file" | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/'); do
		echo "== fuzz $pkg $target ($fuzztime)"
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" -parallel="$parallel" "$pkg"; then
			status=1
		fi
	done
done < <(git ls-files '*_test.go' 2>/dev/null | xargs -r grep -l '^func Fuzz' | sort)
exit $status
