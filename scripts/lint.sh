#!/usr/bin/env bash
# lint.sh: everything `make lint` checks; fails on any finding.
#   - gofmt and go vet over the whole module;
#   - staticcheck (honnef.co/go/tools, configured by staticcheck.conf),
#     installed into .tools/bin when missing;
#   - the guards that keep the docs and the code in step: the package
#     table of docs/architecture.md (imports between packages and of
#     third-party modules, internal/archcheck), the route and error-code
#     tables of docs/http.md, and the client message types of
#     docs/protocol.md.
set -euo pipefail
cd "$(dirname "$0")/.."

staticcheck_version=v0.8.2
tools="$PWD/.tools/bin"

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2
  echo "$unformatted" >&2
  exit 1
fi
go vet ./...

if ! "$tools/staticcheck" -version 2>/dev/null | grep -qF "(${staticcheck_version#v})"; then
  echo "lint: installing staticcheck $staticcheck_version into $tools"
  GOBIN="$tools" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
"$tools/staticcheck" ./...

go test -count=1 ./internal/archcheck/
go test -count=1 -run 'Documented$' ./internal/httpapi/ ./signaling/ ./cmd/invigil/
echo "lint: gofmt, go vet, staticcheck and the architecture and docs guards clean"
