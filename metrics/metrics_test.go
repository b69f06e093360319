package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestLabelsStayBounded: whatever type or candidate type a client makes
// up, the label values stay in the fixed sets.
func TestLabelsStayBounded(t *testing.T) {
	m := New(Config{Version: "test", MessageTypes: []string{"join"}})
	m.Message("join", true)
	m.Message("x-"+strings.Repeat("z", 100), false)
	m.Message("teleport", false)
	m.ICEConnection(true, "made-up")
	m.ICEConnection(true, "relay")
	m.ICEConnection(false, "relay")
	m.ReceptionReport(20*time.Millisecond, time.Millisecond)
	m.ReceptionReport(0, time.Millisecond)

	if got := testutil.ToFloat64(m.messages["invalid"][0]); got != 2 {
		t.Errorf("invalid/error = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.ice.WithLabelValues("success", "unknown")); got != 1 {
		t.Errorf("success/unknown = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.ice.WithLabelValues("failure", "unknown")); got != 1 {
		t.Errorf("failure/unknown = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.rtt); n != 1 {
		t.Errorf("rtt series %d", n)
	}
	// No series carries a client-chosen value.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if body := rec.Body.String(); strings.Contains(body, "teleport") || strings.Contains(body, "made-up") {
		t.Error("a client-chosen string became a label value")
	}
}

func TestReadyz(t *testing.T) {
	full := false
	h := &Health{Full: func() bool { return full }}
	code := func() int {
		rec := httptest.NewRecorder()
		h.Readyz(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec.Code
	}
	if c := code(); c != 200 {
		t.Errorf("ready node: %d", c)
	}
	full = true
	if c := code(); c != 503 {
		t.Errorf("full node: %d", c)
	}
	full = false
	h.SetDraining(true)
	if c := code(); c != 503 {
		t.Errorf("draining node: %d", c)
	}
}
