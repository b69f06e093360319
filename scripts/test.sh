#!/usr/bin/env bash
# test.sh: everything `make test` runs. Installs the external programs the
# tests drive (Chromium, …) when missing, lints, then runs every Go test
# with the race detector. Nothing is skipped in CI (CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
bash scripts/lint.sh
# -race on everything: the packages are concurrent through and through.
# -timeout bounds a hung run well inside CI's budget.
go test -race -count=1 -timeout 15m ./...
# Each fuzz target runs briefly beyond its seed corpus (testdata/fuzz):
# parsers of untrusted input must not crash or hang on new inputs. The
# budget is a count of executions (a few seconds each here), not a
# duration: Go 1.26's coordinator can fail a duration run at its deadline
# with no finding (go.dev/issue/75804, fixed in Go 1.27).
# package:target:executions. FuzzHandleOffer makes a real PeerConnection
# per input (~0.7 ms), so it gets fewer.
for target in signaling:FuzzDecodeInbound:30000 signaling:FuzzVerifyToken:30000 signaling:FuzzSendingSections:30000 \
  sfu:FuzzPayloadParsers:30000 sfu:FuzzHandleOffer:5000 \
  record:FuzzSignedBytes:20000 record:FuzzParseSPS:20000 record:FuzzSplitAVC:20000; do
  IFS=: read -r pkg fn runs <<<"$target"
  go test "./$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "${runs}x"
done
