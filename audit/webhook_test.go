package audit

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

// newFileStore is a FileStore in the test's temporary directory, closed
// when the test ends.
func newFileStore(t testing.TB) *FileStore {
	t.Helper()
	s, err := NewFileStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

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
	w := NewWebhook(newFileStore(t), srv.URL, secret, quiet)
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

// TestWebhookNeverBlocks: while the receiver holds a delivery and never
// answers, Append still returns, a hundred times.
func TestWebhookNeverBlocks(t *testing.T) {
	hang := make(chan struct{})
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-hang
	}))
	defer srv.Close()
	defer close(hang)
	w := NewWebhook(newFileStore(t), srv.URL, []byte("s"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	if _, err := w.Append(context.Background(), "exam-1", room.Event{Kind: "note"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver never got the first delivery")
	}
	for range 100 {
		if _, err := w.Append(context.Background(), "exam-1", room.Event{Kind: "note"}); err != nil {
			t.Fatal(err)
		}
	}
	if s := w.Stats(); s.Delivered != 0 || s.Queued == 0 {
		t.Errorf("stats %+v: want nothing delivered and the rest queued behind the hung receiver", s)
	}
}
