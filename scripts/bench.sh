#!/usr/bin/env bash
# bench.sh: the forwarding-path micro-benchmarks with allocation counts,
# then a short `invigil load` run against a node on this host (server on
# CPU 0, load generator on CPU 1 when there are two), and a summary.
#
# Environment: ROOMS (default 4), STUDENTS (per room, 25), DURATION (20s),
# RAMP (5s). The run is bounded by DURATION; the node is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== micro-benchmarks (go test -bench, -benchmem)"
go test -run '^$' -bench . -benchmem -count 1 ./sfu/

work=$(mktemp -d)
trap 'kill "${node:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/invigil" ./cmd/invigil

pin_node=() pin_load=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_node=(taskset -c 0) pin_load=(taskset -c 1)
fi
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http=$(port) udp=$(port) tcp=$(port)
secret=$(head -c 32 /dev/urandom | base64)

"${pin_node[@]}" "$work/invigil" serve --api-secret "$secret" --http-addr "127.0.0.1:$http" \
	--rtc-udp-port "$udp" --rtc-tcp-port "$tcp" --node-ip 127.0.0.1 --turn-udp-port 0 \
	--data-dir "$work/data" --log-level warn \
	--max-participants-per-node 2000 --max-rooms 200 \
	--max-connections-per-ip 2000 --connection-rate-per-ip 1000 --connection-burst-per-ip 1000 \
	2>"$work/node.log" &
node=$!
for _ in $(seq 50); do
	curl -fsS "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done

echo
echo "== invigil load: ${ROOMS:-4} rooms × ${STUDENTS:-25} students + 1 proctor, ${DURATION:-20s} (node pid $node${pin_node:+, pinned to CPU 0})"
"${pin_load[@]}" "$work/invigil" load --url "http://127.0.0.1:$http" --api-secret "$secret" \
	--rooms "${ROOMS:-4}" --students-per-room "${STUDENTS:-25}" --proctors-per-room 1 \
	--duration "${DURATION:-20s}" --ramp "${RAMP:-5s}" --server-pid "$node"
kill "$node"
wait "$node" 2>/dev/null || true
node=
echo
echo "Figures and method: docs/benchmarks.md"
