#!/usr/bin/env bash
# test.sh: everything `make test` runs, in phases. Installs the external
# programs the tests drive (Chromium, …) when missing, lints (with the
# architecture and docs guards), then runs every Go test with the race
# detector. Nothing is skipped in CI (CI=true).
#
# Phases:
#   1. lint (scripts/lint.sh).
#   2. every package but the timing-sensitive ones, two at a time (go
#      test's default on two cores).
#   3. the timing-sensitive tests, one package at a time and beside
#      nothing else: real browsers (e2e), load runs (loadtest, the
#      command's TestLoad*), and the tests that assert a deadline of a few
#      seconds (a stall seen within --stall-after + 1 s, a full disk
#      stopping a recording within 5 s, …), which a neighbouring
#      package's CPU would bend.
#   4. each fuzz target briefly beyond its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh

echo "== 1. lint"
bash scripts/lint.sh

# timing_pkgs run whole in phase 3; timing_tests (a -run/-skip pattern)
# are phase 3's part of timing_test_pkgs.
timing_pkgs=(./e2e/ ./loadtest/)
timing_tests='^(TestLoad|TestMediaWatchdog|TestDiskFullStopsRecording|TestRedisRestart|TestMediaPathCut|TestDeadAndSlowClients|TestStalledSubscriberHoldsBackNobody)'
timing_test_pkgs=(./cmd/invigil/ ./record/ ./cluster/ ./signaling/ ./sfu/)
mapfile -t rest < <(go list ./... | grep -v -e '/e2e$' -e '/loadtest$')

# -timeout bounds a hung run well inside CI's budget.
echo "== 2. unit and integration tests"
go test -race -count=1 -timeout 15m -skip "$timing_tests" "${rest[@]}"

echo "== 3. timing-sensitive tests, one package at a time"
go test -race -count=1 -timeout 15m -p 1 "${timing_pkgs[@]}"
go test -race -count=1 -timeout 10m -p 1 -run "$timing_tests" "${timing_test_pkgs[@]}"

# Each fuzz target runs briefly beyond its seed corpus (testdata/fuzz):
# parsers of untrusted input must not crash or hang on new inputs. The
# budget is a count of executions (a few seconds each here), not a
# duration: Go 1.26's coordinator can fail a duration run at its deadline
# with no finding (go.dev/issue/75804, fixed in Go 1.27).
# package:target:executions. FuzzHandleOffer makes a real PeerConnection
# per input (~0.7 ms), so it gets fewer.
echo "== 4. fuzz targets"
for target in signaling:FuzzDecodeInbound:30000 signaling:FuzzVerifyToken:30000 signaling:FuzzSendingSections:30000 \
  sfu:FuzzPayloadParsers:30000 sfu:FuzzHandleOffer:5000 sfu:FuzzDemux:20000 \
  sfu/internal/rtcpx:FuzzPackets:30000 sfu/internal/rtcpx:FuzzTWCC:10000 \
  turn:FuzzParseUsername:30000 turn:FuzzPolicyMappedForms:30000 \
  record:FuzzSignedBytes:20000 record:FuzzParseSPS:20000 record:FuzzSplitAVC:20000; do
  IFS=: read -r pkg fn runs <<<"$target"
  go test "./$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "${runs}x"
done
