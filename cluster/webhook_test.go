package cluster

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/room"
)

// memStore is a minimal in-memory EventStore for the webhook's own test;
// the stores themselves are tested against files and Redis.
type memStore struct {
	mu  sync.Mutex
	seq map[string]int64
}

func (m *memStore) Append(_ context.Context, r string, e room.Event) (room.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq[r]++
	e.Seq = m.seq[r]
	return e, nil
}

func (m *memStore) List(context.Context, string, int64, int) ([]room.Event, error) { return nil, nil }

// TestWebhookAtLeastOnce: a receiver on loopback that answers 500 to
// every third request still sees every event, signed, by its idempotency
// key; and a receiver that hangs never slows an Append.
func TestWebhookAtLeastOnce(t *testing.T) {
	secret := []byte("webhook-secret-webhook-secret-32b")
	var mu sync.Mutex
	seen := map[string]int{}
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests%3 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if err := VerifyWebhook(secret, body, r.Header.Get(HeaderSignature)); err != nil {
			t.Errorf("bad signature: %v", err)
		}
		seen[r.Header.Get(HeaderIdempotency)]++
	}))
	defer srv.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	w := NewWebhook(&memStore{seq: map[string]int64{}}, srv.URL, secret, quiet)
	defer w.Close()
	for i := range 30 {
		if _, err := w.Append(context.Background(), []string{"exam-1", "exam-2"}[i%2], room.Event{Kind: "note"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for w.Stats().Delivered < 30 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 30 || seen["exam-1:15"] != 1 || seen["exam-2:15"] != 1 {
		t.Errorf("receiver saw %d distinct keys (%v), want 30 (exam-1:1…15, exam-2:1…15)", len(seen), seen)
	}
	if requests < 40 {
		t.Errorf("only %d requests: the injected 500s were not retried", requests)
	}
}

// TestWebhookNeverBlocks: with a receiver that never answers, Append
// returns at once.
func TestWebhookNeverBlocks(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang)
	w := NewWebhook(&memStore{seq: map[string]int64{}}, srv.URL, []byte("s"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	start := time.Now()
	for range 100 {
		w.Append(context.Background(), "exam-1", room.Event{Kind: "note"})
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("100 appends took %v against a hanging receiver", took)
	}
}
