package metrics

import (
	"net/http"
	"sync/atomic"
)

// Health answers the load balancer's liveness and readiness probes.
type Health struct {
	draining atomic.Bool
	// Full reports whether the node is at its configured capacity; nil
	// means never.
	Full func() bool
}

// SetDraining marks the node as leaving service: /readyz answers 503 so
// no new room is sent here, while running sessions carry on.
func (h *Health) SetDraining(d bool) { h.draining.Store(d) }

// Draining reports whether SetDraining(true) was called.
func (h *Health) Draining() bool { return h.draining.Load() }

// Healthz is 200 while the process serves HTTP.
func (h *Health) Healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// Readyz is 200 when the node accepts new rooms and 503 when it is
// draining or full.
func (h *Health) Readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case h.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("draining\n"))
	case h.Full != nil && h.Full():
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("full\n"))
	default:
		w.Write([]byte("ready\n"))
	}
}
