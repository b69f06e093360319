package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/testclient"
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
		if err := audit.VerifyWebhook([]byte(hookSecret), body, r.Header.Get(audit.HeaderSignature)); err != nil {
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
