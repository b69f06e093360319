package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

// TestMetricsUnderTraffic scrapes a node while a proctor watches two
// students: promtool finds nothing to complain about, and the figures say
// what the traffic was.
func TestMetricsUnderTraffic(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/v1/rtc"
	proctor := testclient.Join(t, ws, secret, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, ws, testclient.Options{Secret: secret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, Simulcast: true})
	bob := testclient.Join(t, ws, secret, "exam-1", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media at the proctor", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 20 && proctor.PacketsFrom(bob.Me.SID) > 20
	})
	// Focusing alice switches her down-track to the high layer.
	proctor.Send(map[string]any{"v": 1, "type": "focus", "identity": "alice"})
	// One malformed frame, counted as an invalid message with an error.
	bad := testclient.Dial(t, ws)
	bad.Write(t.Context(), 1, []byte("{not json"))
	if _, err := testclient.Recv(bad, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	var text []byte
	var fams map[string]*dto.MetricFamily
	testclient.Eventually(t, 10*time.Second, "join durations observed", func() bool {
		text = scrape(t, srv.base)
		fams = parse(t, text)
		return value(fams, "invigil_join_duration_seconds", nil) >= 2 && value(fams, "invigil_layer_switches_total", nil) >= 1
	})
	promtool(t, text)

	checks := []struct {
		name   string
		labels map[string]string
		min    float64
		max    float64
	}{
		{"invigil_rooms", nil, 1, 1},
		{"invigil_participants", map[string]string{"role": "student"}, 2, 2},
		{"invigil_participants", map[string]string{"role": "proctor"}, 1, 1},
		{"invigil_tracks", map[string]string{"kind": "video", "direction": "in"}, 2, 2},
		{"invigil_tracks", map[string]string{"kind": "audio", "direction": "out"}, 2, 2},
		{"invigil_rtp_packets_total", map[string]string{"direction": "in"}, 40, 1e9},
		{"invigil_rtp_packets_total", map[string]string{"direction": "out"}, 40, 1e9},
		{"invigil_rtp_bytes_total", map[string]string{"direction": "out"}, 40 * 100, 1e12},
		{"invigil_signaling_messages_total", map[string]string{"type": "join", "result": "ok"}, 3, 3},
		{"invigil_signaling_messages_total", map[string]string{"type": "invalid", "result": "error"}, 1, 1},
		{"invigil_ice_connections_total", map[string]string{"result": "success"}, 3, 3},
		{"invigil_websocket_connections", nil, 4, 4},
		{"invigil_build_info", nil, 1, 1},
		{"invigil_plis_total", nil, 1, 1e6},
	}
	for _, c := range checks {
		if v := value(fams, c.name, c.labels); v < c.min || v > c.max {
			t.Errorf("%s%v = %v, want in [%v, %v]", c.name, c.labels, v, c.min, c.max)
		}
	}
	for _, name := range []string{"invigil_rtt_seconds", "invigil_jitter_seconds", "invigil_turn_allocations",
		"invigil_turn_relayed_bytes_total", "invigil_redis_errors_total",
		"invigil_nacks_total", "invigil_retransmits_total", "invigil_rtp_packets_lost_total", "go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("%s not exported", name)
		}
	}
}

func scrape(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return b
}

func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return fams
}

// value sums the samples of a family whose labels include want; for a
// histogram it is the sample count.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	sum := 0.0
next:
	for _, m := range f.Metric {
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// promtool runs `promtool check metrics` (Debian package prometheus) on a
// scrape: it lints names, units and help strings.
func promtool(t *testing.T, text []byte) {
	t.Helper()
	cmd := exec.Command(lookTool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMessageTypesLabelled: every client message type signaling knows has
// its own value of invigil_signaling_messages_total's type label, so none
// is counted as an invalid frame by the node's registry.
func TestMessageTypesLabelled(t *testing.T) {
	m := newTestNode(t).metrics
	types := signaling.ClientMessageTypes()
	for _, typ := range types {
		m.Message(typ, true)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	fams := parse(t, rec.Body.Bytes())
	for _, typ := range types {
		if v := value(fams, "invigil_signaling_messages_total", map[string]string{"type": typ, "result": "ok"}); v != 1 {
			t.Errorf("type %q counted %v times under its own label, want 1", typ, v)
		}
	}
	if v := value(fams, "invigil_signaling_messages_total", map[string]string{"type": "invalid"}); v != 0 {
		t.Errorf("%v known messages counted as invalid", v)
	}
}
