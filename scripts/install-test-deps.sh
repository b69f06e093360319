#!/usr/bin/env bash
# install-test-deps.sh: installs the external programs Invigil's tests start
# themselves (Chromium, coturn's turnutils_uclient, redis-server and
# redis-sentinel, HAProxy,
# nginx, promtool, ffprobe) or check files with (systemd-analyze) on
# Debian/Ubuntu, only when some are missing. kubectl is not among them:
# Debian's (1.20) embeds a kustomize too old for the manifests; the
# kustomize check runs where a current kubectl is installed.
#
# It also builds SeaweedFS's weed, the S3-compatible server package
# record's upload tests start, once into a cache outside the repository
# (scripts/seaweedfs.sh: ~5 minutes of 2 cores the first time, nothing
# after), and installs the npm packages the tests use (e2e/node: typescript for
# the SDK's type check, puppeteer-core to drive Firefox ESR) with `npm ci`
# when e2e/node/node_modules is missing or older than the lock file.
#
# Idempotent and non-interactive: when every program is present it changes
# nothing and exits 0. Installing needs root; without root it exits 1 naming
# what is missing. Services are not started: the tests start each daemon on
# 127.0.0.1 with ephemeral ports and stop it by PID.
set -euo pipefail

# Each entry is "program:package".
deps=(
  "chromium:chromium"
  "turnutils_uclient:coturn"
  "redis-server:redis-server"
  "redis-sentinel:redis-sentinel"
  "haproxy:haproxy"
  "nginx:nginx"
  "promtool:prometheus"
  "ffprobe:ffmpeg"
  "systemd-analyze:systemd"
  "firefox-esr:firefox-esr"
)

# have reports whether a program is installed, also in sbin directories that
# a non-root PATH may lack (haproxy and nginx live in /usr/sbin).
have() {
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing_programs=()
missing_packages=()
for dep in "${deps[@]}"; do
  program=${dep%%:*}
  package=${dep#*:}
  if ! have "$program"; then
    missing_programs+=("$program")
    missing_packages+=("$package")
  fi
done

# npm_deps installs e2e/node's packages from its lock file. puppeteer-core
# must not download a browser: the tests use Debian's Chromium and Firefox.
npm_deps() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/e2e/node"
  if [ -d "$dir/node_modules" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: error: npm not found; install Node.js and npm" >&2
    exit 1
  fi
  echo "install-test-deps: npm ci in e2e/node"
  (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
}

# weed builds SeaweedFS when its cache lacks it (Go is already needed).
weed() {
  bash "$(dirname "$0")/seaweedfs.sh" >/dev/null
}

if [ ${#missing_packages[@]} -eq 0 ]; then
  npm_deps
  weed
  echo "install-test-deps: all test programs present (${deps[*]%%:*}); nothing to install"
  exit 0
fi

echo "install-test-deps: missing ${missing_programs[*]} (packages: ${missing_packages[*]})"

if [ "$(id -u)" -ne 0 ]; then
  echo "install-test-deps: error: installing needs root; run as root:" >&2
  echo "  sudo $0" >&2
  echo "  or: apt-get update && apt-get install -y ${missing_packages[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: error: apt-get not found; install ${missing_packages[*]} with this system's package manager" >&2
  exit 1
fi

echo "install-test-deps: apt-get update"
apt-get update -q
echo "install-test-deps: apt-get install ${missing_packages[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing_packages[@]}"

still_missing=()
for program in "${missing_programs[@]}"; do
  have "$program" || still_missing+=("$program")
done
if [ ${#still_missing[@]} -ne 0 ]; then
  echo "install-test-deps: error: still missing after install: ${still_missing[*]}" >&2
  exit 1
fi
echo "install-test-deps: installed ${missing_packages[*]}"
npm_deps
weed
