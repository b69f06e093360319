#!/usr/bin/env bash
# bench.sh: the forwarding-path micro-benchmarks with allocation counts.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -run '^$' -bench . -benchmem -count 1 ./sfu/
