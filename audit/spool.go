package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// Spool defaults (docs/cluster.md, "The spool").
const (
	// DefaultSpoolMaxBytes bounds the events spooled and not yet in Redis:
	// at ~300 bytes an event, about 900,000 of them, hours of a busy
	// node's events with Redis away.
	DefaultSpoolMaxBytes = 256 << 20
	// DefaultHandoverTimeout is how long a node that takes a room waits
	// for the room's previous writer, silent since, to ship what it may
	// still hold before it numbers the room's events itself. A writer
	// that is alive says so every touchEvery (3 s) while it holds the
	// room or events of it; with SpoolConfig.Heartbeats, a writer whose
	// node heartbeat is gone is not waited for at all. So the wait is
	// for a live node, still shipping the room's backlog (after a Redis
	// outage, say): it bounds a live writer whose shipping is stuck.
	DefaultHandoverTimeout = 20 * time.Second
)

// Shipping timing.
const (
	// shipBatch bounds the events one ship script carries.
	shipBatch = 256
	// shipRetry is how soon a failed ship is tried again: a Redis back
	// from an outage has the backlog within a second.
	shipRetry = 500 * time.Millisecond
	// shipTimeout bounds one round trip to Redis.
	shipTimeout = 2 * time.Second
	// touchEvery is how often the writer of a room says, in the room's
	// trail record, that it is alive (as often as leases are renewed).
	touchEvery = 3 * time.Second
)

// Errors of the spool.
var (
	// ErrSpoolFull: the events not yet in Redis reached the spool's size
	// limit, or the disk refused a write; the event was not recorded.
	ErrSpoolFull = errors.New("audit: spool full")
	// ErrHandover: the room's previous node may hold events the stream
	// does not have yet; the room waits for them (or the hand-over
	// timeout) before this node numbers its events.
	ErrHandover = errors.New("audit: the room's previous node has not handed its trail over yet")
)

// SpoolConfig sets up a Spool.
type SpoolConfig struct {
	// Dir holds the spool: one fsynced JSON-lines file per room.
	Dir string
	// Redis is where events are shipped (a Redis Stream per room).
	Redis redis.UniversalClient
	// Prefix starts every key (the cluster's).
	Prefix string
	// NodeID names this node in the rooms' trail records.
	NodeID string
	// MaxBytes bounds the events spooled and not yet shipped; 0 is
	// DefaultSpoolMaxBytes.
	MaxBytes int64
	// HandoverTimeout: see DefaultHandoverTimeout (0 is that).
	HandoverTimeout time.Duration
	// Heartbeats, when set, is the key prefix of the nodes' heartbeats
	// (the cluster's "node:"): a previous writer whose heartbeat key is
	// gone is dead to placement, which has moved its rooms already, and
	// is not waited for; its events that come later go to events-late.
	Heartbeats string
	// Held says whether this node holds room now (has participants in
	// it); a room it no longer holds is handed over once shipped.
	Held func(room string) bool
	// Logger receives outages, recoveries and conflicts; nil discards.
	Logger *slog.Logger
	// KeepEvery is how often trail records are kept (touchEvery when 0;
	// tests shorten it).
	KeepEvery time.Duration
}

// SpoolStats are the spool's gauges and counters (metrics).
type SpoolStats struct {
	// BacklogEvents and BacklogBytes are spooled and not yet in Redis.
	BacklogEvents, BacklogBytes int64
	// Refused are events not recorded: the spool was full or the disk
	// refused the write.
	Refused uint64
	// Shipped are events written to the stream.
	Shipped uint64
	// Late are events a previous writer shipped after another node had
	// numbered the room past them: kept in events-late:<room>.
	Late uint64
	// Gaps are shipments that had to leave a gap in a stream (events the
	// stream lost that no spool here had).
	Gaps uint64
	// Reships are the times a room's stream was found behind what it had
	// been shipped (Redis lost events: a restart without its AOF, a
	// failover) and this node's spool was shipped again from its tail.
	Reships uint64
	// Full is true while new events are refused.
	Full bool
	// RedisDown is true while shipping fails.
	RedisDown bool
}

// Spool is the audit trail in cluster mode: an event is numbered by the
// room's writer (this node, while it holds the room's lease), written
// and fsynced to a local file (the FileStore's group commit) and then
// acknowledged; a shipper copies each room's events, in order, into the
// room's Redis Stream, idempotently on the room's sequence number. With
// Redis away, sessions and proctors' live feeds go on and the spool
// grows; when Redis is back, the backlog is shipped. See docs/cluster.md,
// "The spool", for the numbering and hand-over rules.
//
//	events:<room>       stream: entry "<seq>-1", field e = the event's JSON
//	trail:<room>        hash: writer (node numbering the room), seq (last
//	                    seq shipped), seen (writer's last sign, unix ms),
//	                    forced_from (a writer that was given up on)
//	events-late:<room>  stream: a given-up writer's events shipped late
type Spool struct {
	cfg   SpoolConfig
	local *FileStore
	log   *slog.Logger
	rs    *RedisStore // reads

	wake      chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	// mu guards rooms and backlogBytes.
	mu           sync.Mutex
	rooms        map[string]*spoolRoom
	backlogBytes int64

	refused, shipped, late, gaps, reships atomic.Uint64
	full, down                            atomic.Bool
}

// spoolRoom is one room's shipping state.
type spoolRoom struct {
	last    int64 // last seq spooled and acknowledged
	shipped int64 // last seq the stream is known to have (or was set aside as late)
	off     int64 // spool file offset the shipper reads on from
	pending int64 // bytes of spool file past off (the backlog, roughly)
	known   bool  // shipped has been read from the stream since start
	adopted bool  // this node is the room's writer (Prepare or a ship said so)
	handed  bool  // handed over: the room is not held here and all is shipped
	touched time.Time
}

var _ Store = (*Spool)(nil)

// NewSpool opens the spool in cfg.Dir and starts its shipper; events
// spooled before a crash are shipped as soon as Redis answers.
func NewSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Redis == nil {
		return nil, errors.New("audit: spool without redis")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultSpoolMaxBytes
	}
	if cfg.HandoverTimeout <= 0 {
		cfg.HandoverTimeout = DefaultHandoverTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepEvery <= 0 {
		cfg.KeepEvery = touchEvery
	}
	if cfg.Held == nil {
		cfg.Held = func(string) bool { return false }
	}
	local, err := NewFileStore(cfg.Dir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Spool{cfg: cfg, local: local, log: cfg.Logger, rs: NewRedisStore(cfg.Redis, cfg.Prefix),
		wake: make(chan struct{}, 1), stop: make(chan struct{}), rooms: map[string]*spoolRoom{}}
	names, err := local.roomNames()
	if err != nil {
		local.Close()
		return nil, err
	}
	for _, name := range names {
		last, err := local.last(name)
		if err != nil {
			local.Close()
			return nil, err
		}
		s.rooms[name] = &spoolRoom{last: last, pending: local.size(name)}
		s.backlogBytes += local.size(name)
	}
	s.wg.Add(1)
	go s.ship()
	s.poke()
	return s, nil
}

func (s *Spool) streamKey(roomName string) string { return s.cfg.Prefix + "events:" + roomName }
func (s *Spool) recordKey(roomName string) string { return s.cfg.Prefix + "trail:" + roomName }
func (s *Spool) lateKey(roomName string) string   { return s.cfg.Prefix + "events-late:" + roomName }

func (s *Spool) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// roomLocked returns room's state, making it.
func (s *Spool) roomLocked(roomName string) *spoolRoom {
	r := s.rooms[roomName]
	if r == nil {
		r = &spoolRoom{}
		s.rooms[roomName] = r
	}
	return r
}

// Append implements room.EventSink: it returns once the event is
// fsynced in the spool, never waiting on Redis.
func (s *Spool) Append(ctx context.Context, roomName string, e room.Event) (room.Event, error) {
	s.mu.Lock()
	over := s.backlogBytes >= s.cfg.MaxBytes
	s.mu.Unlock()
	if over {
		s.refuse(roomName, e.Kind, ErrSpoolFull)
		return e, fmt.Errorf("%w: %d bytes wait for Redis", ErrSpoolFull, s.cfg.MaxBytes)
	}
	e, err := s.local.Append(ctx, roomName, e)
	size := eventSize(e)
	if err != nil {
		if !errors.Is(err, ErrClosed) && ctx.Err() == nil {
			s.refuse(roomName, e.Kind, err)
			err = fmt.Errorf("%w: %w", ErrSpoolFull, err)
		}
		return e, err
	}
	s.full.Store(false)
	s.mu.Lock()
	r := s.roomLocked(roomName)
	if e.Seq > r.last {
		r.last = e.Seq
	}
	r.handed, r.touched = false, time.Now()
	r.pending += size
	s.backlogBytes += size
	s.mu.Unlock()
	s.poke()
	return e, nil
}

// refuse counts and logs (once per episode) an event not recorded.
func (s *Spool) refuse(roomName, kind string, err error) {
	s.refused.Add(1)
	if s.full.CompareAndSwap(false, true) {
		s.log.Error("audit spool refuses events: they are not recorded until there is room (alert InvigilTrailSpoolFull)",
			"room", roomName, "kind", kind, "err", err)
	}
}

// Prepare is asked when this node takes room (a join claimed it): it
// makes this node the room's writer and numbers on from the stream's
// last seq. When the room's previous writer has been silent for less
// than the hand-over timeout it may still hold events the stream lacks:
// Prepare returns ErrHandover and the join is retried. Once this node
// is the writer, Prepare answers without asking Redis.
func (s *Spool) Prepare(ctx context.Context, roomName string) error {
	s.mu.Lock()
	r := s.roomLocked(roomName)
	adopted := r.adopted
	s.mu.Unlock()
	if adopted {
		return nil
	}
	res, err := adoptScript.Run(ctx, s.cfg.Redis, []string{s.recordKey(roomName), s.streamKey(roomName)},
		s.cfg.NodeID, time.Now().UnixMilli(), s.cfg.HandoverTimeout.Milliseconds(), s.cfg.Heartbeats).StringSlice()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if len(res) >= 3 && res[0] == "wait" {
		return fmt.Errorf("%w: node %s wrote it last (up to %s ms more)", ErrHandover, res[1], res[2])
	}
	if len(res) < 2 || res[0] != "ok" {
		return fmt.Errorf("%w: adopt answered %v", ErrUnavailable, res)
	}
	var tail int64
	fmt.Sscan(res[1], &tail)
	if len(res) >= 3 && res[2] != "" {
		s.log.Warn("took a room whose previous node never handed it over: its events that come later go to events-late",
			"room", roomName, "previous_node", res[2], "seq", tail)
	}
	last, err := s.local.raise(roomName, tail)
	if err != nil {
		return err
	}
	s.mu.Lock()
	r.adopted, r.handed, r.touched = true, false, time.Now()
	r.last = max(r.last, last)
	if !r.known || r.shipped < tail && r.last <= tail {
		// Nothing of ours waits: the stream has the room up to tail.
		r.shipped, r.known = min(tail, r.last), true
		if r.shipped == r.last {
			s.backlogBytes -= r.pending
			r.pending = 0
		}
	}
	s.mu.Unlock()
	return nil
}

// List implements Store: the stream, then the events spooled here that
// it lacks yet; the spool alone while Redis is away.
func (s *Spool) List(ctx context.Context, roomName string, after int64, limit int) ([]room.Event, error) {
	out, err := s.rs.List(ctx, roomName, after, limit)
	if err != nil {
		local, lerr := s.local.List(ctx, roomName, after, limit)
		if lerr != nil {
			return nil, err
		}
		return local, nil
	}
	if len(out) < limit {
		from := after
		if len(out) > 0 {
			from = out[len(out)-1].Seq
		}
		s.mu.Lock()
		r := s.rooms[roomName]
		pending := r != nil && r.last > from
		s.mu.Unlock()
		if pending {
			more, err := s.local.List(ctx, roomName, from, limit-len(out))
			if err == nil {
				out = append(out, more...)
			}
		}
	}
	return out, nil
}

// Stats returns the spool's gauges and counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	var events int64
	for _, r := range s.rooms {
		if r.last > r.shipped {
			events += r.last - r.shipped
		}
	}
	b := s.backlogBytes
	s.mu.Unlock()
	return SpoolStats{BacklogEvents: events, BacklogBytes: b, Refused: s.refused.Load(), Shipped: s.shipped.Load(),
		Late: s.late.Load(), Gaps: s.gaps.Load(), Reships: s.reships.Load(), Full: s.full.Load() || b >= s.cfg.MaxBytes, RedisDown: s.down.Load()}
}

// Full says whether new events are refused now (/readyz is 503 then).
func (s *Spool) Full() bool { return s.Stats().Full }

// Close ships what it can in a moment, then stops the shipper and
// closes the spool's files; what is left is shipped on the next start.
func (s *Spool) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		err = s.local.Close()
	})
	return err
}

// roomNames are the rooms spooled here (the webhook's resume reads them).
func (s *Spool) roomNames() ([]string, error) { return s.local.roomNames() }
