// Package metrics serves what load balancers and Prometheus read from a
// node: /healthz and /readyz today. It imports no Invigil package: the
// others push their state into it through plain values and functions that
// cmd/invigil wires up.
package metrics
