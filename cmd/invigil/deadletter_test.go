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
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
)

// TestWebhookDeadLetterRetry: POST /v1/webhooks/dead-letters/retry, on
// a node in cluster mode (dead letters in a real redis-server). A
// receiver that refuses every event (500) leaves them all dead-lettered
// after --webhook-max-attempts; once it accepts, one retry delivers each
// dead letter, signed, under its room:seq key, and none is kept; a second
// retry has nothing to do. Only admins may call it; a node without a
// webhook answers 404.
func TestWebhookDeadLetterRetry(t *testing.T) {
	const hookSecret = "webhook-secret-0123456789abcdef-dead"
	var mu sync.Mutex
	failing := true
	refused := map[string]int{}  // idempotency key → refusals
	accepted := map[string]int{} // idempotency key → acceptances
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get(audit.HeaderIdempotency)
		mu.Lock()
		defer mu.Unlock()
		if failing {
			refused[key]++
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
		if got := ev.Room + ":" + itoa(ev.Event.Seq); got != key {
			t.Errorf("body is %s, key %s", got, key)
		}
		accepted[key]++
	}))
	defer recv.Close()
	rs := testredis.Start(t, 0)
	srv := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a",
		"--webhook-url", recv.URL, "--webhook-secret", hookSecret, "--webhook-max-attempts", "2", "--webhook-max-delay", "100ms")

	testclient.Eventually(t, 10*time.Second, "a join (the cluster settled)", func() bool {
		return joinReply(t, srv.base, "exam-dl", "alice", room.RoleStudent)["type"] == "joined"
	})
	// alice joined and left: join and leave (at least) are dead-lettered.
	retry := srv.base + "/v1/webhooks/dead-letters/retry"
	// Dead-lettered: each event refused twice, and counted (after it is
	// kept) as failed.
	testclient.Eventually(t, 15*time.Second, "the room's events dead-lettered", func() bool {
		mu.Lock()
		n := len(refused)
		for _, r := range refused {
			if r < 2 {
				n = -1
			}
		}
		mu.Unlock()
		failed := value(parse(t, scrape(t, srv.base)), "invigil_webhook_events_total", map[string]string{"result": "failed"})
		return n >= 2 && failed == float64(n)
	})
	mu.Lock()
	keys := make([]string, 0, len(refused))
	for k := range refused {
		keys = append(keys, k)
	}
	failing = false
	mu.Unlock()

	if code, _ := api(t, http.MethodPost, retry, "", nil); code != http.StatusUnauthorized {
		t.Errorf("retry without a token: %d, want 401", code)
	}
	if code, _ := api(t, http.MethodPost, retry, testclient.Mint(t, secret, "exam-dl", "proctor-1", room.RoleProctor), nil); code != http.StatusForbidden {
		t.Errorf("retry by a proctor: %d, want 403", code)
	}
	code, res := api(t, http.MethodPost, retry, adminToken(t), nil)
	if code != http.StatusOK || res["retried"] != float64(len(keys)) || res["delivered"] != float64(len(keys)) || res["remaining"] != float64(0) {
		t.Fatalf("retry: %d %v, want %d retried and delivered, 0 remaining", code, res, len(keys))
	}
	mu.Lock()
	for _, k := range keys {
		if accepted[k] != 1 {
			t.Errorf("%s accepted %d times on retry, want 1", k, accepted[k])
		}
	}
	mu.Unlock()
	if code, res := api(t, http.MethodPost, retry, adminToken(t), nil); code != http.StatusOK || res["retried"] != float64(0) || res["remaining"] != float64(0) {
		t.Errorf("a second retry: %d %v, want nothing to retry", code, res)
	}

	plain := startServe(t, "--api-secret", secret)
	if code, res := api(t, http.MethodPost, plain.base+"/v1/webhooks/dead-letters/retry", adminToken(t), nil); code != http.StatusNotFound {
		t.Errorf("retry without a webhook: %d %v, want 404", code, res)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
