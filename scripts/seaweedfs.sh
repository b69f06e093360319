#!/usr/bin/env bash
# seaweedfs.sh: builds SeaweedFS's `weed` (Apache-2.0), the S3-compatible
# server package record's upload tests start, once, into a cache outside
# the repository, and prints its path. When the binary is there it only
# prints the path.
#
# `go install github.com/seaweedfs/seaweedfs/weed@VERSION` is refused (its
# go.mod has replace directives), so a throwaway wrapper module in a
# temporary directory builds it: a go.mod and a tools file importing the
# command, `go get` of the pinned version, `go mod tidy`, `go build`.
# About 5 minutes on 2 cores and a ~230 MB binary; the module cache it
# fills is Go's own (GOMODCACHE).
#
# The cache is $INVIGIL_WEED (a path to the binary) or
# ${XDG_CACHE_HOME:-$HOME/.cache}/invigil/weed-<version>/weed; the tests
# look in the same place.
set -euo pipefail

version=v0.0.0-20261109003541-7506e5f91cd6
cache="${XDG_CACHE_HOME:-$HOME/.cache}/invigil/weed-${version}"
bin="${INVIGIL_WEED:-$cache/weed}"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
cat >go.mod <<'MOD'
module invigil.local/weedbuild

go 1.26
MOD
cat >tools.go <<'GO'
//go:build tools

// Package weedbuild only pins SeaweedFS so that `go build` can build weed.
package weedbuild

import _ "github.com/seaweedfs/seaweedfs/weed"
GO
echo "seaweedfs: building weed $version (about 5 minutes on 2 cores)" >&2
start=$(date +%s)
go get "github.com/seaweedfs/seaweedfs@${version}" >&2
go mod tidy >&2
mkdir -p "$(dirname "$bin")"
go build -trimpath -o "$bin.tmp" github.com/seaweedfs/seaweedfs/weed >&2
mv "$bin.tmp" "$bin"
echo "seaweedfs: built $bin in $(($(date +%s) - start)) s" >&2
echo "$bin"
