package audit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// newSpool opens a spool in dir shipping to url as node.
func newSpool(t *testing.T, dir, url, node string, held func(string) bool) *Spool {
	t.Helper()
	sp, err := NewSpool(SpoolConfig{Dir: dir, Redis: newRedisClient(t, url), NodeID: node, Held: held,
		KeepEvery: 200 * time.Millisecond, HandoverTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// note appends a note numbered i and returns its seq; it fails the
// test when the append takes long (a session must never wait on Redis).
func note(t *testing.T, sp *Spool, roomName, node string, i int) int64 {
	t.Helper()
	start := time.Now()
	e, err := sp.Append(context.Background(), roomName, room.Event{Time: time.Now().UTC(), Node: node, Kind: room.EventNote, Details: map[string]any{"i": i}})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("append took %v", d)
	}
	return e.Seq
}

// streamSeqs reads a room's stream straight from Redis.
func streamSeqs(t *testing.T, rdb *redis.Client, roomName string) []room.Event {
	t.Helper()
	evs, err := NewRedisStore(rdb, "").List(context.Background(), roomName, 0, 100000)
	if err != nil {
		return nil
	}
	return evs
}

// checkTrail fails unless the stream holds seqs 1..n in order, once
// each.
func checkTrail(t *testing.T, evs []room.Event, n int) {
	t.Helper()
	if len(evs) != n {
		t.Fatalf("stream has %d events, want %d", len(evs), n)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

// TestRedisRestartSpool: Redis (appendonly, fsync always) is SIGKILLed
// while events are recorded; appends go on at local speed; Redis is
// restarted from its AOF: the stream gets every event once, in order,
// gap-free.
func TestRedisRestartSpool(t *testing.T) {
	aof := t.TempDir()
	rs := testredis.Start(t, 0, "--appendonly", "yes", "--appendfsync", "always", "--dir", aof)
	sp := newSpool(t, t.TempDir(), rs.URL(), "n1", nil)
	defer sp.Close()
	rdb := newRedisClient(t, rs.URL())
	if err := sp.Prepare(context.Background(), "exam-1"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		note(t, sp, "exam-1", "n1", i)
	}
	testclient.Eventually(t, 5*time.Second, "shipped before the outage", func() bool { return len(streamSeqs(t, rdb, "exam-1")) == 20 })

	rs.Stop() // SIGKILL
	for i := 20; i < 60; i++ {
		if seq := note(t, sp, "exam-1", "n1", i); seq != int64(i+1) {
			t.Fatalf("note %d got seq %d during the outage", i, seq)
		}
	}
	testclient.Eventually(t, 5*time.Second, "the spool noticing the outage", func() bool { return sp.Stats().RedisDown })
	if st := sp.Stats(); st.BacklogEvents != 40 || st.BacklogBytes <= 0 {
		t.Fatalf("backlog during the outage: %+v", st)
	}
	// The events API still answers, from the spool.
	if evs, err := sp.List(context.Background(), "exam-1", 0, 1000); err != nil || len(evs) != 60 {
		t.Fatalf("List during the outage: %d events, %v", len(evs), err)
	}

	testredis.Start(t, rs.Port, "--appendonly", "yes", "--appendfsync", "always", "--dir", aof)
	testclient.Eventually(t, 10*time.Second, "the backlog shipped", func() bool { return sp.Stats().BacklogEvents == 0 && !sp.Stats().RedisDown })
	checkTrail(t, streamSeqs(t, rdb, "exam-1"), 60)
	if st := sp.Stats(); st.Late != 0 || st.Gaps != 0 || st.BacklogBytes != 0 {
		t.Errorf("after the outage: %+v", st)
	}
}

// TestSpoolCrashReplay: a node's spool holds events Redis never got (it
// shipped to a Redis that was not there); reopened on the same files
// with Redis up, it ships them once; reopening again ships nothing more.
func TestSpoolCrashReplay(t *testing.T) {
	rs := testredis.Start(t, 0)
	rdb := newRedisClient(t, rs.URL())
	dir := t.TempDir()
	up := newSpool(t, dir, rs.URL(), "n1", nil)
	for i := range 5 {
		note(t, up, "exam-1", "n1", i)
	}
	testclient.Eventually(t, 5*time.Second, "shipped", func() bool { return len(streamSeqs(t, rdb, "exam-1")) == 5 })
	up.Close()

	dead := testredis.Start(t, 0)
	dead.Stop() // a port nobody answers on
	down := newSpool(t, dir, dead.URL(), "n1", nil)
	for i := 5; i < 25; i++ {
		note(t, down, "exam-1", "n1", i)
	}
	down.Close() // as good as a crash: the files are fsynced, nothing shipped

	again := newSpool(t, dir, rs.URL(), "n1", nil)
	testclient.Eventually(t, 5*time.Second, "the spool replayed", func() bool { return len(streamSeqs(t, rdb, "exam-1")) >= 25 })
	again.Close()
	once := newSpool(t, dir, rs.URL(), "n1", nil)
	testclient.Eventually(t, 5*time.Second, "a third start caught up", func() bool { return once.Stats().BacklogEvents == 0 && !once.Stats().RedisDown })
	once.Close()
	checkTrail(t, streamSeqs(t, rdb, "exam-1"), 25)
}

// TestSpoolHandover: node a holds unshipped events of a room when it
// stops; node b takes the room: b waits (ErrHandover) until a, back,
// has shipped and handed the room over, then numbers on after a's last
// event. Nothing is lost and no seq is given twice. A node given up on
// after the hand-over timeout has its late events kept in events-late.
func TestSpoolHandover(t *testing.T) {
	rs := testredis.Start(t, 0)
	rdb := newRedisClient(t, rs.URL())
	aDir := t.TempDir()
	ctx := context.Background()

	a := newSpool(t, aDir, rs.URL(), "a", nil)
	if err := a.Prepare(ctx, "exam-1"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		note(t, a, "exam-1", "a", i)
	}
	testclient.Eventually(t, 5*time.Second, "a shipped", func() bool { return len(streamSeqs(t, rdb, "exam-1")) == 3 })
	a.Close()
	dead := testredis.Start(t, 0)
	dead.Stop()
	aCut := newSpool(t, aDir, dead.URL(), "a", nil) // a, cut off from Redis
	for i := 3; i < 10; i++ {
		note(t, aCut, "exam-1", "a", i)
	}
	aCut.Close() // a is gone with seqs 4..10 unshipped

	b := newSpool(t, t.TempDir(), rs.URL(), "b", nil)
	defer b.Close()
	if err := b.Prepare(ctx, "exam-1"); !errors.Is(err, ErrHandover) {
		t.Fatalf("b took the room while a may hold events: %v", err)
	}
	aBack := newSpool(t, aDir, rs.URL(), "a", func(string) bool { return false })
	defer aBack.Close()
	testclient.Eventually(t, 10*time.Second, "b taking the room once a handed it over", func() bool { return b.Prepare(ctx, "exam-1") == nil })
	if seq := note(t, b, "exam-1", "b", 10); seq != 11 {
		t.Fatalf("b's first event has seq %d, want 11", seq)
	}
	testclient.Eventually(t, 5*time.Second, "b shipped", func() bool { return len(streamSeqs(t, rdb, "exam-1")) == 11 })
	evs := streamSeqs(t, rdb, "exam-1")
	checkTrail(t, evs, 11)
	for i, e := range evs {
		want := "a"
		if i == 10 {
			want = "b"
		}
		if e.Node != want || fmt.Sprint(e.Details["i"]) != fmt.Sprint(i) {
			t.Fatalf("event %d: node %s details %v", e.Seq, e.Node, e.Details)
		}
	}

	// c gives up on b (silent past a short hand-over timeout) while b
	// still holds an event: b's event goes to events-late, not over c's.
	b.Close()
	bCut := newSpool(t, t.TempDir(), dead.URL(), "b", nil)
	bCut.Close()
	c, err := NewSpool(SpoolConfig{Dir: t.TempDir(), Redis: newRedisClient(t, rs.URL()), NodeID: "c", HandoverTimeout: 300 * time.Millisecond, KeepEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testclient.Eventually(t, 5*time.Second, "c taking the room after the timeout", func() bool { return c.Prepare(ctx, "exam-1") == nil })
	if seq := note(t, c, "exam-1", "c", 11); seq != 12 {
		t.Fatalf("c's first event has seq %d", seq)
	}
	testclient.Eventually(t, 5*time.Second, "c shipped", func() bool { return len(streamSeqs(t, rdb, "exam-1")) == 12 })
	// b comes back with an event it numbered 12 while cut off.
	bDir := t.TempDir()
	bLate := newSpool(t, bDir, dead.URL(), "b", nil)
	if _, err := bLate.local.raise("exam-1", 11); err != nil {
		t.Fatal(err)
	}
	note(t, bLate, "exam-1", "b", 99)
	bLate.Close()
	bBack := newSpool(t, bDir, rs.URL(), "b", nil)
	defer bBack.Close()
	testclient.Eventually(t, 5*time.Second, "b's late event kept aside", func() bool { return bBack.Stats().Late == 1 })
	late, err := rdb.XRange(ctx, "events-late:exam-1", "-", "+").Result()
	if err != nil || len(late) != 1 || late[0].Values["node"] != "b" || late[0].Values["seq"] != "12" {
		t.Fatalf("events-late: %v, %v", late, err)
	}
	evs = streamSeqs(t, rdb, "exam-1")
	checkTrail(t, evs, 12)
	if evs[11].Node != "c" {
		t.Fatalf("seq 12 is %s's, want c's", evs[11].Node)
	}
}

// TestSpoolFull: past its size limit the spool refuses new events
// (counted, Full) and keeps every one it acknowledged; once Redis takes
// the backlog it records again.
func TestSpoolFull(t *testing.T) {
	rs := testredis.Start(t, 0)
	port := rs.Port
	rs.Stop()
	sp, err := NewSpool(SpoolConfig{Dir: t.TempDir(), Redis: newRedisClient(t, rs.URL()), NodeID: "n1", MaxBytes: 2000})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx := context.Background()
	acked := 0
	for i := range 100 {
		_, err := sp.Append(ctx, "exam-1", room.Event{Time: time.Now().UTC(), Kind: room.EventNote, Details: map[string]any{"i": i}})
		if errors.Is(err, ErrSpoolFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		acked++
	}
	if acked == 0 || acked == 100 || !sp.Full() || sp.Stats().Refused != 1 {
		t.Fatalf("acked %d, stats %+v", acked, sp.Stats())
	}
	rs = testredis.Start(t, port)
	rdb := newRedisClient(t, rs.URL())
	testclient.Eventually(t, 10*time.Second, "the backlog shipped", func() bool { return !sp.Full() })
	note(t, sp, "exam-1", "", 1000)
	testclient.Eventually(t, 5*time.Second, "shipped", func() bool { return len(streamSeqs(t, rdb, "exam-1")) == acked+1 })
	checkTrail(t, streamSeqs(t, rdb, "exam-1"), acked+1)
}
