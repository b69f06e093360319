package audit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/internal/testredis"
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

func newFileCursors(t testing.TB) *FileCursors {
	t.Helper()
	c, err := NewFileCursors(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newWebhook(t testing.TB, cfg WebhookConfig) *Webhook {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w, err := NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// receiver is a webhook endpoint on loopback: it checks each delivery's
// signature and timestamp, answers with fail's status (0: 204), and
// keeps what it accepted in order.
type receiver struct {
	t      testing.TB
	secret []byte
	srv    *httptest.Server

	// mu guards the fields below.
	mu       sync.Mutex
	fail     func(room string, seq int64) int
	accepted map[string][]int64 // room → seqs accepted, in arrival order
	requests int
}

func newReceiver(t testing.TB, secret []byte) *receiver {
	r := &receiver{t: t, secret: secret, accepted: map[string][]int64{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := VerifyWebhook(r.secret, body, req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderSignature), time.Now(), WebhookReplayWindow); err != nil {
		r.t.Errorf("delivery %s: %v", req.Header.Get(HeaderIdempotency), err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var d struct {
		Room  string     `json:"room"`
		Event room.Event `json:"event"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		r.t.Errorf("delivery body: %v", err)
	}
	if key := d.Room + ":" + strconv.FormatInt(d.Event.Seq, 10); key != req.Header.Get(HeaderIdempotency) {
		r.t.Errorf("Idempotency-Key %q for %s", req.Header.Get(HeaderIdempotency), key)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.fail != nil {
		if status := r.fail(d.Room, d.Event.Seq); status != 0 {
			w.WriteHeader(status)
			return
		}
	}
	r.accepted[d.Room] = append(r.accepted[d.Room], d.Event.Seq)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) setFail(f func(room string, seq int64) int) {
	r.mu.Lock()
	r.fail = f
	r.mu.Unlock()
}

func (r *receiver) seqs(roomName string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.accepted[roomName]...)
}

// waitSeqs waits until roomName's accepted seqs reach last.
func (r *receiver) waitSeqs(t *testing.T, roomName string, last int64) []int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := r.seqs(roomName)
		if len(got) > 0 && got[len(got)-1] >= last {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the receiver accepted %v, want up to %d", roomName, got, last)
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver's record
	}
}

// inOrder checks that seqs is 1…last, each once.
func inOrder(t *testing.T, roomName string, seqs []int64, last int64) {
	t.Helper()
	if int64(len(seqs)) != last {
		t.Errorf("%s: accepted %v, want 1…%d once each", roomName, seqs, last)
		return
	}
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Errorf("%s: accepted %v, want 1…%d in order", roomName, seqs, last)
			return
		}
	}
}

func appendN(t *testing.T, s Store, roomName string, n int) {
	t.Helper()
	for range n {
		if _, err := s.Append(context.Background(), roomName, room.Event{Time: time.Now(), Kind: "note"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWebhookAtLeastOnce: a receiver that answers 500 to every third
// request still accepts every event of two rooms, in order per room,
// each signed.
func TestWebhookAtLeastOnce(t *testing.T) {
	secret := []byte("webhook-secret-webhook-secret-32b")
	r := newReceiver(t, secret)
	n := 0
	r.setFail(func(string, int64) int {
		if n++; n%3 == 0 {
			return http.StatusInternalServerError
		}
		return 0
	})
	w := newWebhook(t, WebhookConfig{Store: newFileStore(t), URL: r.srv.URL, Secret: secret, Cursors: newFileCursors(t), MaxDelay: 200 * time.Millisecond})
	defer w.Close()
	for i := range 30 {
		appendN(t, w, []string{"exam-1", "exam-2"}[i%2], 1)
	}
	for _, name := range []string{"exam-1", "exam-2"} {
		inOrder(t, name, r.waitSeqs(t, name, 15), 15)
	}
	if r.requests < 40 {
		t.Errorf("only %d requests: the injected 500s were not retried", r.requests)
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
	w := newWebhook(t, WebhookConfig{Store: newFileStore(t), URL: srv.URL, Secret: []byte("s"), Cursors: newFileCursors(t)})
	defer w.Close()
	appendN(t, w, "exam-1", 1)
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver never got the first delivery")
	}
	start := time.Now()
	appendN(t, w, "exam-1", 100)
	if s := w.Stats(); s.Delivered != 0 || s.Behind != 1 {
		t.Errorf("stats %+v: want nothing delivered and the room behind the hung receiver", s)
	}
	t.Logf("100 appends behind a hung receiver took %s", time.Since(start))
}

// TestWebhookDeadLetter: a receiver that always fails one room's events
// ends each of them, after MaxAttempts, as a dead letter (kept, counted,
// logged with its key) while another room is delivered in order; a 4xx
// refusal is dead-lettered at once.
func TestWebhookDeadLetter(t *testing.T) {
	secret := []byte("webhook-secret-webhook-secret-32b")
	r := newReceiver(t, secret)
	attempts := map[int64]int{}
	r.setFail(func(roomName string, seq int64) int {
		switch roomName {
		case "exam-dead":
			attempts[seq]++
			return http.StatusServiceUnavailable
		case "exam-refused":
			return http.StatusUnprocessableEntity
		}
		return 0
	})
	logs := &logbuf.Buffer{}
	cursors := newFileCursors(t)
	w := newWebhook(t, WebhookConfig{Store: newFileStore(t), URL: r.srv.URL, Secret: secret, Cursors: cursors,
		MaxAttempts: 3, MaxDelay: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer w.Close()
	appendN(t, w, "exam-dead", 2)
	appendN(t, w, "exam-refused", 1)
	appendN(t, w, "exam-ok", 5)
	inOrder(t, "exam-ok", r.waitSeqs(t, "exam-ok", 5), 5)
	deadline := time.Now().Add(20 * time.Second)
	for w.Stats().DeadLettered < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: want 3 dead letters", w.Stats())
		}
		time.Sleep(20 * time.Millisecond) // polling the counter
	}
	dead, err := cursors.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]DeadLetter{}
	for _, d := range dead {
		keys[d.Room+":"+strconv.FormatInt(d.Event.Seq, 10)] = d
	}
	for _, k := range []string{"exam-dead:1", "exam-dead:2", "exam-refused:1"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("no dead letter %s in %+v", k, dead)
		}
	}
	if d := keys["exam-dead:1"]; d.Attempts != 3 || d.Status != http.StatusServiceUnavailable {
		t.Errorf("dead letter exam-dead:1 %+v: want 3 attempts, last 503", d)
	}
	if d := keys["exam-refused:1"]; d.Attempts != 1 || d.Status != http.StatusUnprocessableEntity {
		t.Errorf("dead letter exam-refused:1 %+v: want 1 attempt (a 4xx is final), 422", d)
	}
	r.mu.Lock()
	if attempts[1] != 3 || attempts[2] != 3 {
		t.Errorf("exam-dead attempts %v, want 3 each", attempts)
	}
	r.mu.Unlock()
	if !strings.Contains(logs.String(), "webhook event dead-lettered") || !strings.Contains(logs.String(), "idempotency_key=exam-dead:2") {
		t.Errorf("no dead-letter log line naming the event:\n%s", logs.String())
	}
	if c, _, _ := cursors.Cursor(context.Background(), "exam-dead"); c != 2 {
		t.Errorf("exam-dead's cursor %d after its dead letters, want 2", c)
	}
}

// TestWebhookResumeRedisCursors: cursors in a real redis-server. A
// webhook delivers a room's first events, then the receiver fails;
// the webhook is closed (a node stopped) with a backlog; a new one on
// the same trail and Redis resumes from the cursor once the receiver
// recovers: nothing accepted twice, nothing lost, in order. A room that
// was in the trail before the endpoint existed is not sent.
func TestWebhookResumeRedisCursors(t *testing.T) {
	rs := testredis.Start(t, 0)
	rdb := newRedisClient(t, rs.URL())
	secret := []byte("webhook-secret-webhook-secret-32b")
	r := newReceiver(t, secret)
	store := newFileStore(t)
	// Recorded before the endpoint's start: not sent.
	if _, err := store.Append(context.Background(), "exam-old", room.Event{Time: time.Now().Add(-time.Hour), Kind: "note"}); err != nil {
		t.Fatal(err)
	}
	cfg := WebhookConfig{Store: store, URL: r.srv.URL, Secret: secret, MaxDelay: 100 * time.Millisecond,
		Cursors: NewRedisCursors(rdb, "invigil:", EndpointID(r.srv.URL))}
	w1 := newWebhook(t, cfg)
	appendN(t, w1, "exam-1", 4)
	r.waitSeqs(t, "exam-1", 4)
	r.setFail(func(string, int64) int { return http.StatusBadGateway })
	appendN(t, w1, "exam-1", 6)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		tried := r.requests
		r.mu.Unlock()
		if tried >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failing receiver was not retried")
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver's record
	}
	w1.Close()
	if c, ok, err := cfg.Cursors.Cursor(context.Background(), "exam-1"); err != nil || !ok || c != 4 {
		t.Fatalf("exam-1's cursor in Redis %d %v %v, want 4", c, ok, err)
	}

	r.setFail(nil)
	w2 := newWebhook(t, cfg) // the restart: nothing appended, resumed from the cursors
	defer w2.Close()
	inOrder(t, "exam-1", r.waitSeqs(t, "exam-1", 10), 10)
	if got := r.seqs("exam-old"); len(got) != 0 {
		t.Errorf("exam-old, older than the endpoint, was sent: %v", got)
	}
	if c, ok, _ := cfg.Cursors.Cursor(context.Background(), "exam-old"); !ok || c != 1 {
		t.Errorf("exam-old's cursor %d %v: want it set past its event", c, ok)
	}
}

// TestVerifyWebhook: the signature covers the timestamp, and a timestamp
// outside the window is refused.
func TestVerifyWebhook(t *testing.T) {
	secret := []byte("webhook-secret-webhook-secret-32b")
	body := []byte(`{"room":"r","event":{"seq":1}}`)
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	sig := signature(secret, ts, body)
	for _, tc := range []struct {
		name     string
		body     []byte
		ts, sig  string
		at       time.Time
		want     error
		wantNone bool
	}{
		{name: "good", body: body, ts: ts, sig: sig, at: now.Add(time.Minute), wantNone: true},
		{name: "other timestamp", body: body, ts: strconv.FormatInt(now.Unix()+1, 10), sig: sig, at: now, want: ErrWebhookSignature},
		{name: "other body", body: []byte(`{"room":"r","event":{"seq":2}}`), ts: ts, sig: sig, at: now, want: ErrWebhookSignature},
		{name: "other secret", body: body, ts: ts, sig: signature([]byte("another"), ts, body), at: now, want: ErrWebhookSignature},
		{name: "replayed late", body: body, ts: ts, sig: sig, at: now.Add(WebhookReplayWindow + time.Second), want: ErrWebhookStale},
		{name: "from the future", body: body, ts: ts, sig: sig, at: now.Add(-WebhookReplayWindow - time.Second), want: ErrWebhookStale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifyWebhook(secret, tc.body, tc.ts, tc.sig, tc.at, WebhookReplayWindow)
			if tc.wantNone {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}
