// Package metrics serves what load balancers and Prometheus read from a
// node: /healthz, /readyz and /metrics (client_golang, its own registry,
// every name prefixed invigil_).
//
// It imports no Invigil package. Counters the hot path keeps (packets,
// bytes) are read from a snapshot function at scrape time, so forwarding
// never touches Prometheus; per-event measurements (a message, a join, a
// receiver report) arrive through methods whose signatures match the
// observer interfaces signaling and sfu declare. cmd/invigil wires them.
// Labels are bounded: no room, participant or track ever becomes one.
package metrics
