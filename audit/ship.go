package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// tailLua sets tail to the last seq of the stream KEYS[2].
const tailLua = `
local lastEntry = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local tail = 0
if #lastEntry > 0 then tail = tonumber(string.match(lastEntry[1][1], '^(%d+)')) end
`

// adoptScript makes ARGV[1] the writer of a room (KEYS[1] its trail
// record, KEYS[2] its stream) and answers {"ok", tail, given-up writer}
// or, while another writer was seen less than ARGV[3] ms ago (and, with
// ARGV[4] set, its heartbeat key ARGV[4]..writer lives),
// {"wait", writer, ms left}.
var adoptScript = redis.NewScript(`
local node, now, timeout, beats = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local w = redis.call('HGET', KEYS[1], 'writer')
local forced = ''
if w and w ~= node then
  local seen = tonumber(redis.call('HGET', KEYS[1], 'seen') or '0') or 0
  local left = seen + timeout - now
  local alive = beats == '' or redis.call('EXISTS', beats .. w) == 1
  if left > 0 and alive then return {'wait', w, tostring(left)} end
  forced = w
  redis.call('HSET', KEYS[1], 'forced_from', w, 'forced_at', now)
end
redis.call('HSET', KEYS[1], 'writer', node, 'seen', now)
` + tailLua + `
return {'ok', tostring(tail), forced}
`)

// shipScript appends events (ARGV[4..]: seq, JSON pairs) to a room's
// stream in order, each at ID "<seq>-1", for writer ARGV[1]: an event
// the stream already has (same JSON at that seq) is skipped, so a
// replay is idempotent. It answers {status, events done, tail}:
// "ok"; "writer" (another node is the room's writer: nothing done);
// "conflict" (the event after those done has a different event at its
// seq); "gap" (the stream lacks the seqs before it; with ARGV[3] = "1"
// the gap is accepted).
var shipScript = redis.NewScript(`
local node, now, force = ARGV[1], ARGV[2], ARGV[3]
local w = redis.call('HGET', KEYS[1], 'writer')
if w and w ~= node then return {'writer', '0', w} end
if not w then redis.call('HSET', KEYS[1], 'writer', node) end
` + tailLua + `
local done = 0
for i = 4, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq <= tail then
    local got = redis.call('XRANGE', KEYS[2], seq .. '-1', seq .. '-1')
    if #got == 0 or got[1][2][2] ~= ARGV[i+1] then
      redis.call('HSET', KEYS[1], 'seen', now)
      return {'conflict', tostring(done), tostring(tail)}
    end
  elseif seq == tail + 1 or force == '1' then
    redis.call('XADD', KEYS[2], seq .. '-1', 'e', ARGV[i+1])
    tail = seq
    force = '0'
  else
    redis.call('HSET', KEYS[1], 'seen', now)
    return {'gap', tostring(done), tostring(tail)}
  end
  done = done + 1
end
redis.call('HSET', KEYS[1], 'seen', now, 'seq', tail)
return {'ok', tostring(done), tostring(tail)}
`)

// keepScript is the writer's periodic word on a room: while ARGV[1] is
// the writer it refreshes seen, or, asked to (ARGV[3] = "1") and with
// the stream holding everything up to ARGV[4], hands the room over
// (no writer). It answers {writer, tail} ("released" as the writer
// when it handed over).
var keepScript = redis.NewScript(`
local node, now, release, last = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local w = redis.call('HGET', KEYS[1], 'writer')
` + tailLua + `
if w == node then
  if release == '1' and tail >= last then
    redis.call('HDEL', KEYS[1], 'writer')
    redis.call('HSET', KEYS[1], 'seq', tail, 'seen', now)
    return {'released', tostring(tail)}
  end
  redis.call('HSET', KEYS[1], 'seen', now)
end
return {w or '', tostring(tail)}
`)

// eventSize is the bytes an event takes in the spool.
func eventSize(e room.Event) int64 {
	b, _ := json.Marshal(e)
	return int64(len(b)) + 1
}

// ship is the shipper: it ships every room's backlog whenever an event
// is spooled, retries every shipRetry while Redis is away, and every
// touchEvery keeps the rooms' trail records (see keep).
func (s *Spool) ship() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	keep := time.NewTicker(s.cfg.KeepEvery)
	defer keep.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		if err := s.shipAll(ctx); err != nil {
			retry.Reset(shipRetry)
		}
		select {
		case <-s.stop:
			// A last pass, short: what is left is shipped after restart.
			last, done := context.WithTimeout(context.Background(), time.Second)
			if !s.down.Load() {
				s.shipAll(last)
			}
			done()
			return
		case <-s.wake:
		case <-retry.C:
		case <-keep.C:
			if err := s.keepAll(ctx); err != nil {
				s.outage("keep", err)
			}
		}
	}
}

// outage logs the first failure of an outage.
func (s *Spool) outage(during string, err error) {
	if s.down.CompareAndSwap(false, true) {
		s.log.Error("audit trail cannot reach Redis: events are spooled on this node and shipped when it is back",
			"during", during, "err", err)
	}
}

// shipAll ships each room's backlog; it stops at the first failure to
// reach Redis.
func (s *Spool) shipAll(ctx context.Context) error {
	s.mu.Lock()
	var todo []string
	for name, r := range s.rooms {
		if r.last > r.shipped || (!r.known && r.last > 0) {
			todo = append(todo, name)
		}
	}
	s.mu.Unlock()
	for _, name := range todo {
		if err := s.shipRoom(ctx, name); err != nil {
			s.outage("ship", err)
			return err
		}
	}
	if s.down.CompareAndSwap(true, false) {
		s.log.Info("audit trail reaches Redis again: spooled events shipped")
	}
	s.mu.Lock()
	if s.backlogBytes < s.cfg.MaxBytes {
		s.full.Store(false) // the next refused write says so again
	}
	s.mu.Unlock()
	return nil
}

// shipRoom ships one room's backlog in batches, in seq order.
func (s *Spool) shipRoom(ctx context.Context, name string) error {
	s.mu.Lock()
	r := s.rooms[name]
	known := r.known
	s.mu.Unlock()
	if !known {
		tail, err := s.tail(ctx, name)
		if err != nil {
			return err
		}
		s.mu.Lock()
		// From the stream's tail on; when the stream is at or past our
		// last event, that one is checked (ours, or late).
		r.shipped = min(tail, max(r.last-1, 0))
		r.known = true
		s.mu.Unlock()
	}
	force := false
	for {
		s.mu.Lock()
		last, shipped, off := r.last, r.shipped, r.off
		s.mu.Unlock()
		if shipped >= last {
			return nil
		}
		evs, lines, ends, end, err := s.local.readFrom(name, off, shipped, shipBatch)
		if err != nil {
			return err
		}
		n := 0
		for n < len(evs) && evs[n].Seq <= last {
			n++
		}
		if n == 0 {
			// Nothing spooled past shipped (the seq was raised to the
			// stream's): the stream has it all.
			s.advance(r, last, end, 0)
			return nil
		}
		if evs[0].Seq != shipped+1 && !force {
			// The stream lacks seqs this spool does not have either.
			force = true
		}
		status, done, tail, err := s.shipBatch(ctx, name, evs[:n], lines[:n], force)
		if err != nil {
			return err
		}
		if done > 0 {
			s.shipped.Add(uint64(done))
			if force {
				s.gaps.Add(1)
				s.log.Error("audit stream of a room has a gap no spool here can fill (its events were lost by Redis)",
					"room", name, "from", shipped+1, "to", evs[0].Seq-1)
			}
			force = false
			s.advance(r, evs[done-1].Seq, ends[done-1], done)
		}
		switch status {
		case "ok":
		case "writer", "conflict":
			// Another node numbers this room now: what we hold past
			// its events is kept aside, never renumbered.
			k := done
			if status == "writer" {
				k = n
			} else {
				k = done + 1
			}
			if err := s.shipLate(ctx, name, evs[done:k], lines[done:k]); err != nil {
				return err
			}
			s.advance(r, evs[k-1].Seq, ends[k-1], k-done)
		case "gap":
			// The stream lost events (a failover, a Redis without its
			// AOF): ship ours again from its tail.
			s.reships.Add(1)
			s.log.Warn("audit stream is behind this node's spool: re-shipping", "room", name, "stream_seq", tail, "spooled_seq", last)
			s.mu.Lock()
			r.shipped, r.off = tail, 0
			s.mu.Unlock()
			force = false
			if next, _, _, _, err := s.local.readFrom(name, 0, tail, 1); err == nil && (len(next) == 0 || next[0].Seq != tail+1) {
				force = true
			}
		default:
			return fmt.Errorf("%w: ship answered %q", ErrUnavailable, status)
		}
	}
}

// advance moves room's shipped cursor to seq and its file offset to
// off; count events left the backlog.
func (s *Spool) advance(r *spoolRoom, seq, off int64, count int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > r.shipped {
		r.shipped = seq
	}
	if off > r.off {
		gone := min(off-r.off, r.pending)
		r.pending -= gone
		s.backlogBytes -= gone
		r.off = off
	}
	if r.shipped >= r.last {
		s.backlogBytes -= r.pending
		r.pending = 0
	}
}

// shipBatch runs the ship script for evs.
func (s *Spool) shipBatch(ctx context.Context, name string, evs []room.Event, lines [][]byte, force bool) (status string, done int, tail int64, err error) {
	f := "0"
	if force {
		f = "1"
	}
	args := make([]any, 0, 3+2*len(evs))
	args = append(args, s.cfg.NodeID, time.Now().UnixMilli(), f)
	for i, e := range evs {
		args = append(args, e.Seq, lines[i])
	}
	ctx, cancel := context.WithTimeout(ctx, shipTimeout)
	defer cancel()
	res, err := shipScript.Run(ctx, s.cfg.Redis, []string{s.recordKey(name), s.streamKey(name)}, args...).StringSlice()
	if err != nil {
		return "", 0, 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if len(res) < 3 {
		return "", 0, 0, fmt.Errorf("%w: ship answered %v", ErrUnavailable, res)
	}
	done, _ = strconv.Atoi(res[1])
	tail, _ = strconv.ParseInt(res[2], 10, 64)
	if res[0] == "writer" {
		s.log.Warn("audit events of a room another node took over are kept in events-late", "room", name, "writer", res[2], "events", len(evs))
	}
	return res[0], min(done, len(evs)), tail, nil
}

// shipLate keeps events the stream cannot take at their seq in the
// room's events-late stream, with their node and original seq.
func (s *Spool) shipLate(ctx context.Context, name string, evs []room.Event, lines [][]byte) error {
	ctx, cancel := context.WithTimeout(ctx, shipTimeout)
	defer cancel()
	_, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range evs {
			p.XAdd(ctx, &redis.XAddArgs{Stream: s.lateKey(name), Values: []any{"e", lines[i], "node", s.cfg.NodeID, "seq", e.Seq}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	s.late.Add(uint64(len(evs)))
	s.log.Error("audit events kept out of a room's trail: another node numbered the room past them (alert InvigilTrailLate)",
		"room", name, "events", len(evs), "first_seq", evs[0].Seq, "key", s.lateKey(name))
	return nil
}

// tail is the last seq of room's stream (0 when it has none).
func (s *Spool) tail(ctx context.Context, name string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, shipTimeout)
	defer cancel()
	msgs, err := s.cfg.Redis.XRevRangeN(ctx, s.streamKey(name), "+", "-", 1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	seq, _, _ := cutSeq(msgs[0].ID)
	return seq, nil
}

// keepAll keeps each room's trail record: the writer says it is alive,
// hands over a room it no longer holds once the stream has all of it,
// and notices a stream that lost events (a failover, a Redis restarted
// without its AOF) and re-ships them.
func (s *Spool) keepAll(ctx context.Context) error {
	type item struct {
		name    string
		last    int64
		release bool
	}
	now := time.Now()
	s.mu.Lock()
	var todo []item
	for name, r := range s.rooms {
		if r.handed || !r.known {
			continue
		}
		idle := now.Sub(r.touched) > 2*s.cfg.KeepEvery
		todo = append(todo, item{name, r.last, idle && r.shipped >= r.last})
	}
	s.mu.Unlock()
	for _, it := range todo {
		release := it.release && !s.cfg.Held(it.name)
		rel := "0"
		if release {
			rel = "1"
		}
		cctx, cancel := context.WithTimeout(ctx, shipTimeout)
		res, err := keepScript.Run(cctx, s.cfg.Redis, []string{s.recordKey(it.name), s.streamKey(it.name)},
			s.cfg.NodeID, now.UnixMilli(), rel, it.last).StringSlice()
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if len(res) < 2 {
			continue
		}
		tail, _ := strconv.ParseInt(res[1], 10, 64)
		s.mu.Lock()
		r := s.rooms[it.name]
		switch {
		case res[0] == "released" && r.last == it.last:
			r.handed, r.adopted = true, false
		case res[0] == s.cfg.NodeID && tail < r.shipped:
			// The stream lost what we shipped: ship it again.
			s.log.Warn("audit stream lacks events this node shipped (a failover?): re-shipping", "room", it.name, "stream_seq", tail, "shipped_seq", r.shipped)
			s.reships.Add(1)
			r.shipped, r.off = tail, 0
			s.poke()
		}
		s.mu.Unlock()
	}
	return nil
}

// cutSeq parses a stream entry ID "<seq>-<n>".
func cutSeq(id string) (int64, string, error) {
	for i := 0; i < len(id); i++ {
		if id[i] == '-' {
			seq, err := strconv.ParseInt(id[:i], 10, 64)
			return seq, id[i+1:], err
		}
	}
	seq, err := strconv.ParseInt(id, 10, 64)
	return seq, "", err
}
