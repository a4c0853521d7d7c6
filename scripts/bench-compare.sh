#!/usr/bin/env bash
# Runs Mosquitto and Rampart side by side on loopback with identical load, interleaved, and
# writes the table into docs/BENCHMARKS.md. Arguments go to scripts/benchcompare, e.g.
#   scripts/bench-compare.sh                 # every scenario, 3 runs each
#   scripts/bench-compare.sh -runs 5 -only fan-in-qos0,fan-out-qos0
#   scripts/bench-compare.sh -quick -runs 1  # smoke test of the script itself
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

scripts/test-services.sh install
make build
# 10k idle connections need more descriptors than the usual default.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
go run ./scripts/benchcompare "$@"
