package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// liveFeed gathers the audit events a proctor's session receives live,
// by seq, noting which arrived while Redis was down.
type liveFeed struct {
	c      *testclient.Client
	events map[int64]room.Event
	inDown map[int64]bool
	down   bool
}

// until reads the proctor's feed until cond holds (or fails the test).
func (f *liveFeed) until(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout)
	for !cond() {
		select {
		case m := <-f.c.Events:
			if m.Type != "event" {
				continue
			}
			if old, dup := f.events[m.Event.Seq]; dup {
				t.Errorf("seq %d came live twice: %+v and %+v", m.Event.Seq, old, m.Event)
			}
			f.events[m.Event.Seq] = m.Event
			f.inDown[m.Event.Seq] = f.down
		case <-deadline:
			t.Fatalf("timed out after %s waiting for %s; live events: %v", timeout, what, f.kinds())
		}
	}
}

// drain takes in the events the feed has buffered already.
func (f *liveFeed) drain(t *testing.T) {
	t.Helper()
	for {
		select {
		case m := <-f.c.Events:
			if m.Type == "event" {
				f.events[m.Event.Seq] = m.Event
				f.inDown[m.Event.Seq] = f.down
			}
		default:
			return
		}
	}
}

// has says whether an event of kind about subject came live.
func (f *liveFeed) has(kind, subject string) bool {
	for _, e := range f.events {
		if e.Kind == kind && e.Subject == subject {
			return true
		}
	}
	return false
}

func (f *liveFeed) kinds() []string {
	var out []string
	for seq := int64(1); seq <= int64(len(f.events))+5; seq++ {
		if e, ok := f.events[seq]; ok {
			out = append(out, fmt.Sprintf("%d:%s/%s", seq, e.Kind, e.Subject))
		}
	}
	return out
}

// streamEvents reads a room's whole Redis Stream, entry IDs checked.
func streamEvents(t *testing.T, rdb *redis.Client, roomName string) ([]room.Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	msgs, err := rdb.XRange(ctx, "invigil:events:"+roomName, "-", "+").Result()
	if err != nil {
		return nil, err
	}
	out := make([]room.Event, 0, len(msgs))
	for _, m := range msgs {
		var e room.Event
		s, _ := m.Values["e"].(string)
		if err := json.Unmarshal([]byte(s), &e); err != nil {
			t.Fatalf("stream entry %s: %v", m.ID, err)
		}
		if m.ID != fmt.Sprintf("%d-1", e.Seq) {
			t.Errorf("stream entry %s holds seq %d", m.ID, e.Seq)
		}
		out = append(out, e)
	}
	return out, nil
}

// TestRedisRestartUnderLiveRoom is the operator's case of issue 17: Redis
// (appendonly, appendfsync always) is SIGKILLed under a live room; a
// student joins, publishes, reports a violation and leaves while it is
// down; Redis restarts from its AOF. The proctor saw every event live
// during the outage, and the room's stream ends with every event once,
// in order, seq gap-free.
func TestRedisRestartUnderLiveRoom(t *testing.T) {
	aof := []string{"--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir()}
	rs := testredis.Start(t, 0, aof...)
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a")
	testclient.Eventually(t, 5*time.Second, "placement", func() bool { code, _ := place(t, a.base, "exam-aof", 2); return code == http.StatusOK })
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-aof", "proctor-1", room.RoleProctor)
	feed := &liveFeed{c: proctor, events: map[int64]room.Event{}, inDown: map[int64]bool{}}
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-aof", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "alice's media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })
	feed.until(t, 5*time.Second, "alice's track_published", func() bool { return feed.has(room.EventTrackPublished, "alice") })
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	defer rdb.Close()
	testclient.Eventually(t, 5*time.Second, "alice's events shipped", func() bool {
		evs, err := streamEvents(t, rdb, "exam-aof")
		return err == nil && len(evs) >= len(feed.events)
	})

	rs.Stop() // SIGKILL
	feed.down = true
	bob := testclient.Join(t, wsURL(a.base), secret, "exam-aof", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "bob's media with Redis down", func() bool { return proctor.PacketsFrom(bob.Me.SID) > 30 })
	bob.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden", "details": map[string]any{"hidden_ms": 900}})
	feed.until(t, 5*time.Second, "bob's violation, live", func() bool { return feed.has(room.EventViolation, "bob") })
	bob.Close()
	feed.until(t, 5*time.Second, "bob's leave, live", func() bool { return feed.has(room.EventLeave, "bob") })
	for _, kind := range []string{room.EventJoin, room.EventAdmitted, room.EventTrackPublished, room.EventViolation, room.EventLeave} {
		if !feed.has(kind, "bob") {
			t.Errorf("the proctor did not get bob's %s live with Redis down: %v", kind, feed.kinds())
		}
	}
	fams := parse(t, scrape(t, a.base))
	if v := value(fams, "invigil_trail_redis_down", nil); v != 1 {
		t.Errorf("invigil_trail_redis_down %v with Redis down", v)
	}
	if v := value(fams, "invigil_trail_spool_backlog_events", nil); v < 5 {
		t.Errorf("invigil_trail_spool_backlog_events %v with bob's events waiting", v)
	}
	downSeqs := 0
	for _, d := range feed.inDown {
		if d {
			downSeqs++
		}
	}

	testredis.Start(t, rs.Port, aof...) // from its AOF
	t.Cleanup(func() { a.stop() })      // before this Redis stops: the node's last events reach it
	feed.down = false
	var stream []room.Event
	testclient.Eventually(t, 10*time.Second, "the spool shipped", func() bool {
		evs, err := streamEvents(t, rdb, "exam-aof")
		stream = evs
		return err == nil && len(evs) >= len(feed.events) && value(parse(t, scrape(t, a.base)), "invigil_trail_spool_backlog_events", nil) == 0
	})
	for i, e := range stream {
		if e.Seq != int64(i+1) {
			t.Fatalf("stream entry %d has seq %d: not gap-free from 1 (%d entries)", i, e.Seq, len(stream))
		}
		live, ok := feed.events[e.Seq]
		if !ok {
			continue // an event proctors are not sent (none today), or after the feed was read
		}
		if live.Kind != e.Kind || live.Subject != e.Subject || live.Actor != e.Actor || !live.Time.Equal(e.Time) {
			t.Errorf("seq %d: live %s/%s, in the stream %s/%s", e.Seq, live.Kind, live.Subject, e.Kind, e.Subject)
		}
	}
	for seq := range feed.events {
		if seq < 1 || seq > int64(len(stream)) {
			t.Errorf("seq %d came live but is not in the stream (%d entries)", seq, len(stream))
		}
	}
	if v := value(parse(t, scrape(t, a.base)), "invigil_trail_redis_down", nil); v != 0 {
		t.Errorf("invigil_trail_redis_down %v after Redis came back", v)
	}
	if !strings.Contains(a.stderr.String(), "audit trail cannot reach Redis") {
		t.Errorf("no log line for the trail's outage")
	}
	t.Logf("%d events in the stream, %d of them recorded and seen live while Redis was down", len(stream), downSeqs)
}

// readyz returns /readyz's status code.
func readyz(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRedisDownSpoolFull: with Redis away, events past --spool-max-bytes
// are refused; /readyz is 503 and the metrics say so until Redis is back
// and the backlog shipped.
func TestRedisDownSpoolFull(t *testing.T) {
	rs := testredis.Start(t, 0)
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a", "--spool-max-bytes", "4096")
	testclient.Eventually(t, 5*time.Second, "placement", func() bool { code, _ := place(t, a.base, "exam-full", 2); return code == http.StatusOK })
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-full", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-full", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })
	if code := readyz(t, a.base); code != http.StatusOK {
		t.Fatalf("/readyz %d before the outage", code)
	}

	rs.Stop()
	pad := strings.Repeat("x", 1500) // each violation event ~1.6 kB
	violations := 0
	testclient.Eventually(t, 10*time.Second, "the spool full", func() bool {
		if violations < 8 {
			alice.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden", "details": map[string]any{"pad": pad}})
			violations++
		}
		return readyz(t, a.base) == http.StatusServiceUnavailable
	})
	alice.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden", "details": map[string]any{"pad": pad}})
	testclient.Eventually(t, 5*time.Second, "a refused event counted", func() bool {
		return value(parse(t, scrape(t, a.base)), "invigil_trail_spool_refused_events_total", nil) >= 1
	})
	fams := parse(t, scrape(t, a.base))
	if v := value(fams, "invigil_trail_spool_full", nil); v != 1 {
		t.Errorf("invigil_trail_spool_full %v while refusing", v)
	}
	if v := value(fams, "invigil_trail_spool_backlog_bytes", nil); v < 4096 {
		t.Errorf("invigil_trail_spool_backlog_bytes %v, want the limit reached", v)
	}
	if !strings.Contains(a.stderr.String(), "audit spool refuses events") {
		t.Errorf("no log line for the refusals")
	}
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "media with the spool full", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+30 })

	testredis.Start(t, rs.Port)
	t.Cleanup(func() { a.stop() })
	testclient.Eventually(t, 10*time.Second, "ready again once shipped", func() bool { return readyz(t, a.base) == http.StatusOK })
	if v := value(parse(t, scrape(t, a.base)), "invigil_trail_spool_full", nil); v != 0 {
		t.Errorf("invigil_trail_spool_full %v after shipping", v)
	}
}

// TestRedisRestartAfterNodeKill: a node SIGKILLed while its spool holds
// events Redis never got (Redis stopped), restarted on the same data
// directory: the spool is shipped once Redis is back, nothing lost (each
// event the proctor got live is in the stream) and nothing duplicated.
func TestRedisRestartAfterNodeKill(t *testing.T) {
	aof := []string{"--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir()}
	rs := testredis.Start(t, 0, aof...)
	args := []string{"--redis-url", rs.URL(), "--node-id", "a", "--data-dir", t.TempDir(), "--log-level", "info"}
	n1 := startNodeProc(t, args...)
	testclient.Eventually(t, 5*time.Second, "placement", func() bool { code, _ := place(t, n1.base, "exam-kill", 2); return code == http.StatusOK })
	proctor := testclient.Join(t, wsURL(n1.base), secret, "exam-kill", "proctor-1", room.RoleProctor)
	feed := &liveFeed{c: proctor, events: map[int64]room.Event{}, inDown: map[int64]bool{}}
	alice := testclient.Join(t, wsURL(n1.base), secret, "exam-kill", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "alice's media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })
	feed.until(t, 5*time.Second, "alice's track_published", func() bool { return feed.has(room.EventTrackPublished, "alice") })

	rs.Stop()
	feed.down = true
	bob := testclient.Join(t, wsURL(n1.base), secret, "exam-kill", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "bob's media with Redis down", func() bool { return proctor.PacketsFrom(bob.Me.SID) > 30 })
	bob.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden"})
	feed.until(t, 5*time.Second, "bob's violation, live", func() bool { return feed.has(room.EventViolation, "bob") })
	bob.Close()
	feed.until(t, 5*time.Second, "bob's leave, live", func() bool { return feed.has(room.EventLeave, "bob") })
	if v := value(parse(t, scrape(t, n1.base)), "invigil_trail_spool_backlog_events", nil); v < 5 {
		t.Fatalf("invigil_trail_spool_backlog_events %v before the kill: bob's events should wait for Redis", v)
	}

	n1.cmd.Process.Kill() // SIGKILL, the spool unshipped
	n1.cmd.Wait()
	feed.drain(t)
	n2 := startNodeProc(t, args...) // same node, same --data-dir; Redis still down
	testredis.Start(t, rs.Port, aof...)
	t.Cleanup(func() { // the node first, while this Redis serves
		n2.cmd.Process.Signal(syscall.SIGTERM)
		n2.cmd.Wait()
	})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	defer rdb.Close()
	var stream []room.Event
	last := int64(0)
	for seq := range feed.events {
		last = max(last, seq)
	}
	testclient.Eventually(t, 15*time.Second, "the restarted node's spool shipped", func() bool {
		evs, err := streamEvents(t, rdb, "exam-kill")
		stream = evs
		return err == nil && int64(len(evs)) >= last && value(parse(t, scrape(t, n2.base)), "invigil_trail_spool_backlog_events", nil) == 0
	})
	for i, e := range stream {
		if e.Seq != int64(i+1) {
			t.Fatalf("stream entry %d has seq %d: not gap-free from 1, or duplicated (%d entries)", i, e.Seq, len(stream))
		}
		if live, ok := feed.events[e.Seq]; ok && (live.Kind != e.Kind || live.Subject != e.Subject || !live.Time.Equal(e.Time)) {
			t.Errorf("seq %d: live %s/%s, in the stream %s/%s", e.Seq, live.Kind, live.Subject, e.Kind, e.Subject)
		}
	}
	if int64(len(stream)) != last {
		t.Errorf("stream has %d events, the proctor got %d live (the killed node recorded nothing after)", len(stream), last)
	}
	for seq := int64(1); seq <= last; seq++ {
		if _, ok := feed.events[seq]; !ok {
			t.Errorf("seq %d is in the stream but never came live", seq)
		}
	}
	t.Logf("%d events in the stream after the kill and restart", len(stream))
}
