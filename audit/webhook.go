package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/room"
)

// Webhook delivery (docs/operations.md, "Webhooks").
const (
	// webhookQueue bounds the events waiting for delivery; past it new
	// events are dropped (counted, logged) rather than held in memory.
	webhookQueue = 10_000
	// webhookTimeout bounds one POST.
	webhookTimeout = 5 * time.Second
	// webhookMaxDelay caps the backoff between retries of one event.
	webhookMaxDelay = 30 * time.Second
	// webhookMaxAge is how long an event is retried before it is given up.
	webhookMaxAge = time.Hour
)

// Webhook headers.
const (
	HeaderSignature   = "X-Invigil-Signature" // sha256=<hex HMAC-SHA256 of the body>
	HeaderIdempotency = "Idempotency-Key"     // <room>:<seq>
	HeaderTimestamp   = "X-Invigil-Timestamp" // unix seconds of the first attempt
)

// WebhookStats are the delivery counters.
type WebhookStats struct {
	Delivered, Failed, Dropped uint64
	Queued                     int
}

// Webhook is a Store that stores through another and then POSTs
// each stored event to a URL, at least once, in the background: a slow
// or dead endpoint never holds up the session that caused the event.
type Webhook struct {
	Store
	url    string
	secret []byte
	client *http.Client
	log    *slog.Logger

	queue  chan webhookEvent
	stop   chan struct{}
	ctx    context.Context // cancelled by Close: ends a POST in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	delivered, failed, dropped atomic.Uint64
}

type webhookEvent struct {
	Room  string     `json:"room"`
	Event room.Event `json:"event"`
	first time.Time
}

// NewWebhook wraps store. secret signs each body (HMAC-SHA256). Close
// stops delivery; events still queued then are not delivered (they are
// in the store, readable with GET /v1/rooms/{room}/events).
func NewWebhook(store Store, url string, secret []byte, log *slog.Logger) *Webhook {
	w := &Webhook{Store: store, url: url, secret: secret, log: log,
		client: &http.Client{Timeout: webhookTimeout},
		queue:  make(chan webhookEvent, webhookQueue), stop: make(chan struct{})}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(1)
	go w.deliver()
	return w
}

// Append stores e, then queues it for delivery without waiting.
func (w *Webhook) Append(ctx context.Context, roomName string, e room.Event) (room.Event, error) {
	e, err := w.Store.Append(ctx, roomName, e)
	if err != nil {
		return e, err
	}
	select {
	case w.queue <- webhookEvent{Room: roomName, Event: e, first: time.Now()}:
	default:
		if w.dropped.Add(1)%100 == 1 {
			w.log.Warn("webhook queue full: events not delivered (they are in the audit trail)", "room", roomName, "seq", e.Seq, "dropped", w.dropped.Load())
		}
	}
	return e, nil
}

// deliver posts queued events one at a time, in order, each retried
// with exponential backoff and jitter until it is accepted (2xx), the
// endpoint refuses it for good (4xx other than 408/429), or it is an
// hour old.
func (w *Webhook) deliver() {
	defer w.wg.Done()
	for {
		var ev webhookEvent
		select {
		case <-w.stop:
			return
		case ev = <-w.queue:
		}
		body, _ := json.Marshal(ev)
		for attempt := 0; ; attempt++ {
			status, err := w.post(ev, body)
			if err == nil && status/100 == 2 {
				w.delivered.Add(1)
				break
			}
			permanent := err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
			if permanent || time.Since(ev.first) > webhookMaxAge {
				w.failed.Add(1)
				w.log.Warn("webhook gave up on an event", "room", ev.Room, "seq", ev.Event.Seq, "status", status, "err", err, "attempts", attempt+1)
				break
			}
			if attempt == 0 {
				w.log.Warn("webhook delivery failing; retrying with backoff", "room", ev.Room, "seq", ev.Event.Seq, "status", status, "err", err)
			}
			delay := time.Duration(rand.Int64N(int64(min(webhookMaxDelay, 100*time.Millisecond<<min(attempt, 20)))))
			select {
			case <-w.stop:
				return
			case <-time.After(delay):
			}
		}
	}
}

func (w *Webhook) post(ev webhookEvent, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	mac := hmac.New(sha256.New, w.secret)
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderSignature, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set(HeaderIdempotency, ev.Room+":"+strconv.FormatInt(ev.Event.Seq, 10))
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ev.first.Unix(), 10))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Stats returns the delivery counters.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Delivered: w.delivered.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Queued: len(w.queue)}
}

// Close stops delivery.
func (w *Webhook) Close() error {
	close(w.stop)
	w.cancel()
	w.wg.Wait()
	return nil
}

// VerifyWebhook checks a webhook body against its signature header, for
// receivers written in Go.
func VerifyWebhook(secret, body []byte, signature string) error {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal([]byte(signature), []byte("sha256="+hex.EncodeToString(mac.Sum(nil)))) {
		return fmt.Errorf("audit: webhook signature does not match")
	}
	return nil
}
