package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	// webhookTimeout bounds one POST.
	webhookTimeout = 5 * time.Second
	// DefaultWebhookMaxDelay caps the backoff between two attempts at
	// one event.
	DefaultWebhookMaxDelay = time.Minute
	// DefaultWebhookMaxAttempts is how many times an event is tried
	// before it is dead-lettered: with the backoff from 100 ms doubling
	// to a minute, about 40 minutes of a receiver's outage.
	DefaultWebhookMaxAttempts = 50
	// webhookMinDelay is the first backoff.
	webhookMinDelay = 100 * time.Millisecond
	// webhookBatch is how many events one read of the trail takes.
	webhookBatch = 100
	// webhookCursorRetry is how often a cursor that could not be loaded
	// or saved is tried again.
	webhookCursorRetry = time.Second
	// WebhookReplayWindow is how far a receiver should accept a
	// delivery's timestamp from its own clock; every attempt is signed
	// afresh, so a retry is never outside it.
	WebhookReplayWindow = 5 * time.Minute
)

// Webhook headers.
const (
	// HeaderSignature is "sha256=<hex HMAC-SHA256 of timestamp "." body>".
	HeaderSignature   = "X-Invigil-Signature"
	HeaderIdempotency = "Idempotency-Key"     // <room>:<seq>, the same on every attempt
	HeaderTimestamp   = "X-Invigil-Timestamp" // unix seconds of this attempt, signed
)

// WebhookStats are the delivery counters.
type WebhookStats struct {
	// Delivered are events a receiver accepted (2xx); DeadLettered,
	// events given up on and kept as dead letters.
	Delivered, DeadLettered uint64
	// Behind are the rooms with events not yet delivered.
	Behind int
}

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// Store is the trail: events are stored in it and read back from it
	// for delivery (nothing waits in memory).
	Store Store
	// URL receives the POSTs; Secret signs them (HMAC-SHA256).
	URL    string
	Secret []byte
	// Cursors keeps, per room, the last seq the endpoint accepted, and
	// the dead letters (FileCursors on one node, RedisCursors in a
	// cluster).
	Cursors Cursors
	// MaxAttempts before an event is dead-lettered (default
	// DefaultWebhookMaxAttempts); MaxDelay caps the backoff (default
	// DefaultWebhookMaxDelay).
	MaxAttempts int
	MaxDelay    time.Duration
	Logger      *slog.Logger
}

// Cursors persists a webhook endpoint's delivery state.
type Cursors interface {
	// Load returns each room's cursor: the last seq delivered or
	// dead-lettered.
	Load(ctx context.Context) (map[string]int64, error)
	// Cursor is one room's cursor; false when it has none.
	Cursor(ctx context.Context, room string) (int64, bool, error)
	// Advance moves room's cursor to seq unless it is past it already,
	// and returns the cursor after.
	Advance(ctx context.Context, room string, seq int64) (int64, error)
	// Since is when delivery to this endpoint began (recorded the first
	// time it is asked): a room the cursors do not know whose first
	// event is older predates the webhook and is not sent.
	Since(ctx context.Context) (time.Time, error)
	// DeadLetter keeps an event given up on, with why.
	DeadLetter(ctx context.Context, d DeadLetter) error
	// DeadLetters returns the dead letters kept, oldest first.
	DeadLetters(ctx context.Context) ([]DeadLetter, error)
	// Resolve removes the dead letters of the given events (by room and
	// seq), once delivered after all; others, older or newer, stay.
	Resolve(ctx context.Context, done []DeadLetter) error
}

// DeadLetter is an event the endpoint never accepted.
type DeadLetter struct {
	Room     string     `json:"room"`
	Event    room.Event `json:"event"`
	Attempts int        `json:"attempts"`
	Status   int        `json:"status,omitempty"` // the last answer's HTTP status (0: no answer)
	Err      string     `json:"err,omitempty"`
	At       time.Time  `json:"at"`
}

// roomLister is a trail that can name its rooms (the file store, the
// spool's local files): a restarted node finds rooms whose events it
// recorded before it could write their first cursor.
type roomLister interface {
	roomNames() ([]string, error)
}

// Webhook is a Store that stores through the trail and delivers every
// stored event to a URL from the trail, at least once, per room in seq
// order, from a persisted cursor: a restart or a crash resumes where the
// endpoint stopped accepting. Rooms are delivered independently, so one
// room's failing event holds back only that room, and only until it is
// dead-lettered after MaxAttempts.
type Webhook struct {
	Store
	cfg     WebhookConfig
	client  *http.Client
	started time.Time // events appended through it are never older
	log     *slog.Logger

	stop   chan struct{}
	ctx    context.Context // cancelled by Close: ends a POST in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards rooms: each room with a delivery goroutine, and whether
	// events were appended since it last read the trail.
	mu    sync.Mutex
	rooms map[string]*hookRoom

	delivered, dead atomic.Uint64
}

type hookRoom struct {
	wake   chan struct{} // 1-buffered: events appended
	behind bool          // mu: not known to be caught up
}

// NewWebhook starts delivery: rooms with events past their cursor (from
// before a restart) are delivered at once. Close stops it.
func NewWebhook(cfg WebhookConfig) (*Webhook, error) {
	if cfg.Store == nil || cfg.Cursors == nil || cfg.URL == "" {
		return nil, errors.New("audit: webhook needs a store, cursors and a URL")
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultWebhookMaxAttempts
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = DefaultWebhookMaxDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Webhook{Store: cfg.Store, cfg: cfg, log: cfg.Logger, started: time.Now(),
		client: &http.Client{Timeout: webhookTimeout},
		stop:   make(chan struct{}), rooms: map[string]*hookRoom{}}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.wg.Add(1)
	go w.resume()
	return w, nil
}

// Append stores e, then wakes its room's delivery without waiting.
func (w *Webhook) Append(ctx context.Context, roomName string, e room.Event) (room.Event, error) {
	e, err := w.Store.Append(ctx, roomName, e)
	if err != nil {
		return e, err
	}
	w.kick(roomName)
	return e, nil
}

// kick makes sure roomName has a delivery goroutine that will read the
// trail again.
func (w *Webhook) kick(roomName string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.stop:
		return
	default:
	}
	r, ok := w.rooms[roomName]
	if !ok {
		r = &hookRoom{wake: make(chan struct{}, 1)}
		w.rooms[roomName] = r
		w.wg.Add(1)
		go w.deliverRoom(roomName, r)
	}
	r.behind = true
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// resume, at start, wakes every room with a cursor and every room of
// the trail that has none (its first cursor may not have been written
// before a crash): each finds out itself whether it is behind.
func (w *Webhook) resume() {
	defer w.wg.Done()
	var cursors map[string]int64
	for {
		// Since first: a new endpoint's start is before any room it
		// is to deliver.
		_, err := w.cfg.Cursors.Since(w.ctx)
		if err == nil {
			cursors, err = w.cfg.Cursors.Load(w.ctx)
		}
		if err == nil {
			break
		}
		w.log.Warn("webhook cursors unreadable; retrying", "err", err)
		if !w.pause(webhookCursorRetry) {
			return
		}
	}
	for name := range cursors {
		w.kick(name)
	}
	if l, ok := w.cfg.Store.(roomLister); ok {
		names, err := l.roomNames()
		if err != nil {
			w.log.Warn("webhook: rooms of the trail unreadable", "err", err)
		}
		for _, name := range names {
			if _, known := cursors[name]; !known {
				w.kick(name)
			}
		}
	}
}

// pause waits d, or less if Close is called (false then).
func (w *Webhook) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.stop:
		return false
	case <-t.C:
		return true
	}
}

// deliverRoom delivers one room's events from its cursor, in order,
// until Close. It goes idle (and ends) once caught up with no new
// event appended.
func (w *Webhook) deliverRoom(roomName string, r *hookRoom) {
	defer w.wg.Done()
	cursor, ok := w.startCursor(roomName)
	for ok {
		select {
		case <-w.stop:
			return
		case <-r.wake:
		}
		w.mu.Lock()
		r.behind = false
		w.mu.Unlock()
		if cursor, ok = w.catchUp(roomName, cursor); !ok {
			return
		}
		w.mu.Lock()
		if !r.behind && len(r.wake) == 0 {
			delete(w.rooms, roomName)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// startCursor is where a room's delivery starts: its cursor, or for a
// room without one, 0 when its first event is not older than the
// endpoint's start (else the room predates the webhook: its last seq).
func (w *Webhook) startCursor(roomName string) (int64, bool) {
	for {
		cursor, err := w.firstCursor(roomName)
		if err == nil {
			return cursor, true
		}
		w.log.Warn("webhook cursor unreadable; retrying", "room", roomName, "err", err)
		if !w.pause(webhookCursorRetry) {
			return 0, false
		}
	}
}

func (w *Webhook) firstCursor(roomName string) (int64, error) {
	c, ok, err := w.cfg.Cursors.Cursor(w.ctx, roomName)
	if err != nil || ok {
		return c, err
	}
	since, err := w.cfg.Cursors.Since(w.ctx)
	if err != nil {
		return 0, err
	}
	first, err := w.cfg.Store.List(w.ctx, roomName, 0, 1)
	if err != nil {
		return 0, err
	}
	// Since may be recorded after this webhook started (Redis away at
	// first): nothing appended since the start predates it.
	since = minTime(since, w.started)
	if len(first) == 0 || first[0].Time.IsZero() || !first[0].Time.Before(since) {
		return w.cfg.Cursors.Advance(w.ctx, roomName, 0)
	}
	var last int64
	for after := int64(0); ; {
		evs, err := w.cfg.Store.List(w.ctx, roomName, after, webhookBatch)
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 {
			break
		}
		last = evs[len(evs)-1].Seq
		after = last
	}
	w.log.Info("webhook: room predates the webhook, not sent", "room", roomName, "seq", last)
	return w.cfg.Cursors.Advance(w.ctx, roomName, last)
}

// catchUp delivers the room's events after cursor until the trail has
// no more; false when Close ended it.
func (w *Webhook) catchUp(roomName string, cursor int64) (int64, bool) {
	for {
		evs, err := w.cfg.Store.List(w.ctx, roomName, cursor, webhookBatch)
		if err != nil {
			w.log.Warn("webhook: trail unreadable; retrying", "room", roomName, "err", err)
			if !w.pause(webhookCursorRetry) {
				return cursor, false
			}
			continue
		}
		if len(evs) == 0 {
			return cursor, true
		}
		for _, e := range evs {
			if e.Seq <= cursor {
				continue
			}
			if !w.deliverEvent(roomName, e) {
				return cursor, false
			}
			for {
				next, err := w.cfg.Cursors.Advance(w.ctx, roomName, e.Seq)
				if err == nil {
					// Past e when another node delivered further.
					cursor = next
					break
				}
				w.log.Warn("webhook cursor not saved; retrying", "room", roomName, "seq", e.Seq, "err", err)
				if !w.pause(webhookCursorRetry) {
					return cursor, false
				}
			}
			if cursor > e.Seq {
				break // read on from the shared cursor
			}
		}
	}
}

// deliverEvent posts e until it is accepted (2xx), refused for good
// (4xx other than 408/429) or tried MaxAttempts times, backing off
// between attempts; the last two end as a dead letter. False when Close
// ended it.
func (w *Webhook) deliverEvent(roomName string, e room.Event) bool {
	body, _ := json.Marshal(struct {
		Room  string     `json:"room"`
		Event room.Event `json:"event"`
	}{roomName, e})
	for attempt := 1; ; attempt++ {
		status, err := w.post(roomName, e.Seq, body)
		if err == nil && status/100 == 2 {
			w.delivered.Add(1)
			if attempt > 1 {
				w.log.Info("webhook delivered after retries", "room", roomName, "seq", e.Seq, "attempts", attempt)
			}
			return true
		}
		if w.ctx.Err() != nil {
			return false
		}
		permanent := err == nil && status/100 == 4 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests
		if permanent || attempt >= w.cfg.MaxAttempts {
			return w.deadLetter(DeadLetter{Room: roomName, Event: e, Attempts: attempt, Status: status, Err: errString(err), At: time.Now()})
		}
		if attempt == 1 {
			w.log.Warn("webhook delivery failing; retrying with backoff", "room", roomName, "seq", e.Seq, "status", status, "err", err)
		}
		if !w.pause(w.backoff(attempt)) {
			return false
		}
	}
}

// backoff is the wait after the attempt-th failure: half of it fixed,
// half random (so many rooms retrying do not move in step), doubling
// from webhookMinDelay to MaxDelay.
func (w *Webhook) backoff(attempt int) time.Duration {
	d := min(w.cfg.MaxDelay, webhookMinDelay<<min(attempt-1, 30))
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// deadLetter keeps d (retrying the store until it takes it or Close),
// counts and logs it.
func (w *Webhook) deadLetter(d DeadLetter) bool {
	for {
		err := w.cfg.Cursors.DeadLetter(w.ctx, d)
		if err == nil {
			break
		}
		w.log.Warn("webhook dead letter not saved; retrying", "room", d.Room, "seq", d.Event.Seq, "err", err)
		if !w.pause(webhookCursorRetry) {
			return false
		}
	}
	w.dead.Add(1)
	w.log.Error("webhook event dead-lettered: the endpoint never accepted it; it is kept (docs/operations.md, Webhooks: dead letters)",
		"room", d.Room, "seq", d.Event.Seq, "kind", d.Event.Kind, "attempts", d.Attempts, "status", d.Status, "err", d.Err,
		"idempotency_key", d.Room+":"+strconv.FormatInt(d.Event.Seq, 10))
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (w *Webhook) post(roomName string, seq int64, body []byte) (int, error) {
	return w.postCtx(w.ctx, roomName, seq, body)
}

// postCtx is post within ctx.
func (w *Webhook) postCtx(ctx context.Context, roomName string, seq int64, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, signature(w.cfg.Secret, ts, body))
	req.Header.Set(HeaderIdempotency, roomName+":"+strconv.FormatInt(seq, 10))
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// signature is the X-Invigil-Signature of body sent at timestamp ts.
func signature(secret []byte, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Stats returns the delivery counters.
func (w *Webhook) Stats() WebhookStats {
	w.mu.Lock()
	behind := len(w.rooms)
	w.mu.Unlock()
	return WebhookStats{Delivered: w.delivered.Load(), DeadLettered: w.dead.Load(), Behind: behind}
}

// Close stops delivery; what is not delivered yet is delivered from the
// cursors after a restart.
func (w *Webhook) Close() error {
	w.mu.Lock()
	close(w.stop)
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	return nil
}

// Errors of VerifyWebhook.
var (
	ErrWebhookSignature = errors.New("audit: webhook signature does not match")
	ErrWebhookStale     = errors.New("audit: webhook timestamp outside the replay window")
)

// VerifyWebhook checks a delivery, for receivers written in Go: the
// signature over timestamp "." body, and the timestamp within window of
// now (WebhookReplayWindow is the documented one).
func VerifyWebhook(secret, body []byte, timestamp, sig string, now time.Time, window time.Duration) error {
	if !hmac.Equal([]byte(sig), []byte(signature(secret, timestamp, body))) {
		return ErrWebhookSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrWebhookStale, timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > window || d < -window {
		return fmt.Errorf("%w: %s off", ErrWebhookStale, d.Round(time.Second))
	}
	return nil
}
