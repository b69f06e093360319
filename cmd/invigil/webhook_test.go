package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
)

// TestWebhookDelivery: with --webhook-url, a node POSTs its audit events
// to a receiver on loopback that fails every other request with 500; the
// receiver still gets each event, signed, under its room:seq key, and the
// events match the trail.
func TestWebhookDelivery(t *testing.T) {
	const hookSecret = "webhook-secret-0123456789abcdef-xyz"
	var mu sync.Mutex
	got := map[string]string{} // idempotency key → kind
	n := 0
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if n++; n%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if err := audit.VerifyWebhook([]byte(hookSecret), body, r.Header.Get(audit.HeaderTimestamp), r.Header.Get(audit.HeaderSignature), time.Now(), audit.WebhookReplayWindow); err != nil {
			t.Error(err)
		}
		var ev struct {
			Room  string     `json:"room"`
			Event room.Event `json:"event"`
		}
		json.Unmarshal(body, &ev)
		got[r.Header.Get(audit.HeaderIdempotency)] = ev.Event.Kind
	}))
	defer recv.Close()
	srv := startServe(t, "--api-secret", secret, "--webhook-url", recv.URL, "--webhook-secret", hookSecret)
	proctor := testclient.Join(t, wsURL(srv.base), secret, "exam-h", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-h", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 10 })
	alice.Close()
	testclient.Eventually(t, 15*time.Second, "join, publish and leave events at the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		leave := false
		for _, k := range got {
			leave = leave || k == room.EventLeave
		}
		return got["exam-h:1"] == room.EventJoin && leave
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i <= len(got); i++ {
		if _, ok := got["exam-h:"+strconv.Itoa(i)]; !ok {
			t.Errorf("event exam-h:%d never delivered (got %v)", i, got)
		}
	}
}

// outboxReceiver is a webhook endpoint on loopback that answers 503
// while down, and keeps per room the seqs it accepted, in arrival order,
// and how many attempts it refused.
type outboxReceiver struct {
	// mu guards the fields below.
	mu       sync.Mutex
	down     bool
	accepted map[string][]int64
	refused  map[string]int
}

func (o *outboxReceiver) handler(t *testing.T, secret string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := audit.VerifyWebhook([]byte(secret), body, r.Header.Get(audit.HeaderTimestamp), r.Header.Get(audit.HeaderSignature), time.Now(), audit.WebhookReplayWindow); err != nil {
			t.Errorf("delivery %s: %v", r.Header.Get(audit.HeaderIdempotency), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev struct {
			Room  string     `json:"room"`
			Event room.Event `json:"event"`
		}
		json.Unmarshal(body, &ev)
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.down {
			o.refused[ev.Room]++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		o.accepted[ev.Room] = append(o.accepted[ev.Room], ev.Event.Seq)
	})
}

func (o *outboxReceiver) state() (map[string][]int64, map[string]int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	acc, ref := map[string][]int64{}, map[string]int{}
	for k, v := range o.accepted {
		acc[k] = append([]int64(nil), v...)
	}
	for k, v := range o.refused {
		ref[k] = v
	}
	return acc, ref
}

// TestWebhookOutboxRestart: the receiver accepts a room's first events,
// then fails for a while; the node, with a backlog for two rooms, is
// SIGKILLed and restarted on its --data-dir; the restarted node resumes
// delivery from the persisted cursors on its own (no new event), and
// once the receiver recovers every event of the trail has been accepted,
// in order per room, signed, and none accepted twice. On one node (the
// cursors under --data-dir) and in cluster mode (the spool for the
// trail, the cursors in a real redis-server).
func TestWebhookOutboxRestart(t *testing.T) {
	t.Run("one node", func(t *testing.T) { outboxRestart(t, nil) })
	t.Run("cluster", func(t *testing.T) {
		rs := testredis.Start(t, 0)
		outboxRestart(t, []string{"--redis-url", rs.URL()})
	})
}

func outboxRestart(t *testing.T, extra []string) {
	const hookSecret = "webhook-secret-0123456789abcdef-xyz"
	o := &outboxReceiver{accepted: map[string][]int64{}, refused: map[string]int{}}
	recv := httptest.NewServer(o.handler(t, hookSecret))
	defer recv.Close()
	args := append([]string{"--webhook-url", recv.URL, "--webhook-secret", hookSecret, "--webhook-max-delay", "500ms",
		"--data-dir", t.TempDir(), "--node-id", "a", "--log-level", "info"}, extra...)
	n1 := startNodeProc(t, args...)
	if len(extra) > 0 {
		for _, r := range []string{"exam-w1", "exam-w2"} {
			testclient.Eventually(t, 5*time.Second, "placement", func() bool { code, _ := place(t, n1.base, r, 2); return code == http.StatusOK })
		}
	}
	p1 := testclient.Join(t, wsURL(n1.base), secret, "exam-w1", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(n1.base), secret, "exam-w1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "exam-w1's first events accepted", func() bool {
		acc, _ := o.state()
		return len(acc["exam-w1"]) >= 2
	})

	o.mu.Lock()
	o.down = true
	o.mu.Unlock()
	p2 := testclient.Join(t, wsURL(n1.base), secret, "exam-w2", "proctor-2", room.RoleProctor)
	bob := testclient.Join(t, wsURL(n1.base), secret, "exam-w2", "bob", room.RoleStudent)
	for _, c := range []*testclient.Client{alice, bob} {
		c.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden"})
	}
	testclient.Eventually(t, 5*time.Second, "both violations in the trail", func() bool {
		for _, r := range []string{"exam-w1", "exam-w2"} {
			found := false
			for _, e := range roomEvents(t, n1.base, r) {
				found = found || e.Kind == room.EventViolation
			}
			if !found {
				return false
			}
		}
		return true
	})
	testclient.Eventually(t, 10*time.Second, "both rooms' backlogs retried", func() bool {
		_, ref := o.state()
		return ref["exam-w1"] >= 2 && ref["exam-w2"] >= 2
	})
	before, _ := o.state()
	p1.Close()
	p2.Close()
	n1.cmd.Process.Kill() // SIGKILL with a backlog
	n1.cmd.Wait()

	n2 := startNodeProc(t, args...)
	t.Cleanup(func() {
		n2.cmd.Process.Signal(syscall.SIGTERM)
		n2.cmd.Wait()
	})
	_, refusedAtKill := o.state()
	testclient.Eventually(t, 10*time.Second, "the restarted node retrying both rooms without a new event", func() bool {
		_, ref := o.state()
		return ref["exam-w1"] > refusedAtKill["exam-w1"] && ref["exam-w2"] > refusedAtKill["exam-w2"]
	})
	o.mu.Lock()
	o.down = false
	o.mu.Unlock()

	trail := map[string][]room.Event{}
	for _, r := range []string{"exam-w1", "exam-w2"} {
		trail[r] = roomEvents(t, n2.base, r)
	}
	testclient.Eventually(t, 15*time.Second, "every event of the trail accepted", func() bool {
		acc, _ := o.state()
		for r, evs := range trail {
			got := acc[r]
			if len(got) == 0 || got[len(got)-1] < evs[len(evs)-1].Seq {
				return false
			}
		}
		return true
	})
	acc, _ := o.state()
	for r, evs := range trail {
		got := acc[r]
		if len(got) != len(evs) {
			t.Errorf("%s: accepted %v, the trail has %d events: each once", r, got, len(evs))
		}
		for i, seq := range got {
			if seq != int64(i+1) {
				t.Errorf("%s: accepted %v: not 1…%d in order", r, got, len(evs))
				break
			}
		}
	}
	if len(before["exam-w1"]) < 2 || len(before["exam-w2"]) != 0 {
		t.Errorf("before the kill the receiver had %v: want exam-w1's first events and nothing of exam-w2", before)
	}
	fams := parse(t, scrape(t, n2.base))
	if v := value(fams, "invigil_webhook_events_total", map[string]string{"result": "delivered"}); v < float64(len(acc["exam-w1"])-len(before["exam-w1"])+len(acc["exam-w2"])) {
		t.Errorf("invigil_webhook_events_total{result=delivered} %v on the restarted node", v)
	}
	t.Logf("delivered: exam-w1 %d (%d before the kill), exam-w2 %d", len(acc["exam-w1"]), len(before["exam-w1"]), len(acc["exam-w2"]))
}
