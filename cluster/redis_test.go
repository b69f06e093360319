package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
)

func newRedis(t testing.TB, url string) *Redis {
	t.Helper()
	r, err := NewRedis(url, fmt.Sprintf("t%d:", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// nodes heartbeats n nodes n1…nN with free seats each.
func heartbeatNodes(t testing.TB, r *Redis, n, free int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("n%d", i)
		if err := r.Heartbeat(context.Background(), Node{ID: id, URL: "http://" + id, Capacity: free, FreeSeats: free}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPlacementIsAtomic: 50 concurrent placements of one room all get
// the same node.
func TestPlacementIsAtomic(t *testing.T) {
	rs := testredis.Start(t, 0)
	ctx := context.Background()
	heartbeatNodes(t, newRedisShared(t, rs.URL(), "atomic:"), 3, 100)
	var owners sync.Map
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			r := newRedisShared(t, rs.URL(), "atomic:")
			p, err := r.Place(ctx, "exam-1", 26)
			if err != nil {
				t.Error(err)
				return
			}
			owners.Store(p.NodeID, true)
		})
	}
	wg.Wait()
	n := 0
	owners.Range(func(k, _ any) bool { n++; return true })
	if n != 1 {
		t.Errorf("50 concurrent placements went to %d nodes", n)
	}
}

// newRedisShared is newRedis with a fixed prefix, so several clients
// share a key space.
func newRedisShared(t testing.TB, url, prefix string) *Redis {
	r, err := NewRedis(url, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestPlacementSpreads: 30 rooms of 5 students placed at once, before any
// heartbeat shows them, spread over three nodes with no node above 45% of
// the students: the reservations count.
func TestPlacementSpreads(t *testing.T) {
	rs := testredis.Start(t, 0)
	r := newRedis(t, rs.URL())
	heartbeatNodes(t, r, 3, 200)
	per := map[string]int{}
	for i := range 30 {
		p, err := r.Place(context.Background(), fmt.Sprintf("exam-%d", i), 5)
		if err != nil {
			t.Fatal(err)
		}
		per[p.NodeID] += 5
	}
	for id, students := range per {
		if float64(students) > 0.45*150 {
			t.Errorf("node %s got %d of 150 students (%v)", id, students, per)
		}
	}
	if len(per) != 3 {
		t.Errorf("placements %v: want all three nodes used", per)
	}
}

// TestPlacementSkipsDrainingAndFull: a draining node and a node without
// room for the expected seats get no new rooms; with none left, placement
// says so.
func TestPlacementSkipsDrainingAndFull(t *testing.T) {
	rs := testredis.Start(t, 0)
	r := newRedis(t, rs.URL())
	ctx := context.Background()
	r.Heartbeat(ctx, Node{ID: "busy", URL: "http://busy", Capacity: 100, FreeSeats: 10})
	r.Heartbeat(ctx, Node{ID: "leaving", URL: "http://leaving", Capacity: 100, FreeSeats: 100, Draining: true})
	r.Heartbeat(ctx, Node{ID: "ok", URL: "http://ok", Capacity: 100, FreeSeats: 30})
	p, err := r.Place(ctx, "exam-1", 26)
	if err != nil || p.NodeID != "ok" || p.URL != "http://ok" {
		t.Fatalf("placed %+v, %v; want ok", p, err)
	}
	if _, err := r.Place(ctx, "exam-2", 26); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("second room of 26: %v, want ErrNoCapacity (ok has 4 seats left after the reservation)", err)
	}
	// An owned room is found again whatever the seats.
	if p, err := r.Place(ctx, "exam-1", 26); err != nil || p.NodeID != "ok" {
		t.Errorf("placing exam-1 again: %+v, %v", p, err)
	}
	// Once the reservation lapses (the heartbeat would show the room's
	// students by then), its seats count as free again.
	later := time.Now().Add(ReservationTTL + time.Second)
	if p, err := r.placeAt(ctx, "exam-3", 26, later); err != nil || p.NodeID != "ok" {
		t.Errorf("after the reservation lapsed: %+v, %v; want ok", p, err)
	}
	if _, err := r.placeAt(ctx, "exam-4", 26, later); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("exam-4 right after exam-3's reservation: %v, want ErrNoCapacity", err)
	}
}

// TestDeadOwnerLosesRooms: when the owner's heartbeat lapses, the next
// placement moves its room, and a join reaching another node claims it.
func TestDeadOwnerLosesRooms(t *testing.T) {
	rs := testredis.Start(t, 0)
	r := newRedis(t, rs.URL())
	ctx := context.Background()
	heartbeatNodes(t, r, 2, 100)
	p, _ := r.Place(ctx, "exam-1", 5)
	q, _ := r.Claim(ctx, "exam-1", other(p.NodeID), 0)
	if q.NodeID != p.NodeID {
		t.Fatalf("claim by the other node while the owner lives: %+v, want %s", q, p.NodeID)
	}
	// The owner dies: its heartbeat key expires (here, at once).
	r.rdb.Del(ctx, r.prefix+"node:"+p.NodeID)
	q, err := r.Place(ctx, "exam-1", 5)
	if err != nil || q.NodeID != other(p.NodeID) {
		t.Fatalf("after the owner died: %+v, %v; want %s", q, err, other(p.NodeID))
	}
	p2, _ := r.Place(ctx, "exam-2", 5)
	r.rdb.Del(ctx, r.prefix+"node:"+p2.NodeID)
	c, err := r.Claim(ctx, "exam-2", other(p2.NodeID), 0)
	if err != nil || c.NodeID != other(p2.NodeID) {
		t.Errorf("claim of a room whose owner was dead: %+v, %v", c, err)
	}
}

func other(id string) string {
	if id == "n1" {
		return "n2"
	}
	return "n1"
}

// TestRedisRestart: with Redis gone calls fail fast with ErrUnavailable;
// once it is back, heartbeats and lease renewal restore placement.
func TestRedisRestart(t *testing.T) {
	rs := testredis.Start(t, 0)
	r := newRedis(t, rs.URL())
	ctx := context.Background()
	heartbeatNodes(t, r, 2, 100)
	p, _ := r.Place(ctx, "exam-1", 5)
	rs.Stop()
	start := time.Now()
	if _, err := r.Place(ctx, "exam-1", 5); !errors.Is(err, ErrUnavailable) {
		t.Errorf("placement with Redis down: %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a failed placement took %v", took)
	}
	testredis.Start(t, rs.Port) // empty: no persistence
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := r.Heartbeat(ctx, Node{ID: p.NodeID, URL: "http://" + p.NodeID, Capacity: 100, FreeSeats: 100}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("heartbeat did not recover")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Heartbeat(ctx, Node{ID: other(p.NodeID), URL: "http://" + other(p.NodeID), Capacity: 100, FreeSeats: 200})
	if err := r.Renew(ctx, p.NodeID, []string{"exam-1"}); err != nil {
		t.Fatal(err)
	}
	if q, err := r.Place(ctx, "exam-1", 5); err != nil || q.NodeID != p.NodeID {
		t.Errorf("after the restart: %+v, %v; want the renewing owner %s", q, err, p.NodeID)
	}
	nodes, err := r.Nodes(ctx)
	if err != nil || len(nodes) != 2 {
		t.Errorf("nodes %+v, %v", nodes, err)
	}
}

// BenchmarkPlace measures placements through one client: the figure in
// docs/benchmarks.md ("Placement").
func BenchmarkPlace(b *testing.B) {
	rs := testredis.Start(b, 0)
	r := newRedis(b, rs.URL())
	heartbeatNodes(b, r, 3, 1<<30)
	ctx := context.Background()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := r.Place(ctx, fmt.Sprintf("bench-%p-%d", pb, i%200), 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestRestartSettles: when Redis comes back empty, a node that knew the
// store before does not take a room nobody holds yet (its owner has not
// renewed): it answers ErrUnavailable until the owner re-claims it or
// SettleTime passes. A node that never saw the old store is not held
// back, and a room's owner may always re-claim its own room.
func TestRestartSettles(t *testing.T) {
	rs := testredis.Start(t, 0)
	const prefix = "settle:"
	a, b := newRedisShared(t, rs.URL(), prefix), newRedisShared(t, rs.URL(), prefix)
	ctx := context.Background()
	for _, n := range []struct {
		r  *Redis
		id string
	}{{a, "a"}, {b, "b"}} {
		if err := n.r.Heartbeat(ctx, Node{ID: n.id, URL: "http://" + n.id, Capacity: 100, FreeSeats: 100}); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := a.Claim(ctx, "exam-1", "a", 0); err != nil || p.NodeID != "a" {
		t.Fatalf("a claims exam-1: %+v %v", p, err)
	}
	if p, err := b.Claim(ctx, "exam-1", "b", 0); err != nil || p.NodeID != "a" {
		t.Fatalf("b is told a holds exam-1: %+v %v", p, err)
	}

	// Redis restarts empty.
	rs.Stop()
	testredis.Start(t, rs.Port)
	waitUp := func(r *Redis) {
		t.Helper()
		testclient.Eventually(t, 5*time.Second, "Redis back", func() bool {
			return r.Heartbeat(ctx, Node{ID: "probe", URL: "http://probe", Capacity: 1}) == nil
		})
	}
	waitUp(b)
	// b gets the join before a has renewed: it must not take exam-1.
	if p, err := b.Claim(ctx, "exam-1", "b", 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("b claiming exam-1 right after the restart: %+v %v, want ErrUnavailable (settling)", p, err)
	}
	if p, err := b.Place(ctx, "exam-1", 5); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("placing exam-1 right after the restart: %+v %v, want ErrUnavailable (settling)", p, err)
	}
	// A process that never saw the old store is not held back.
	fresh := newRedisShared(t, rs.URL(), prefix)
	if err := fresh.Heartbeat(ctx, Node{ID: "c", URL: "http://c", Capacity: 100, FreeSeats: 100}); err != nil {
		t.Fatal(err)
	}
	if p, err := fresh.Claim(ctx, "exam-2", "c", 0); err != nil || p.NodeID != "c" {
		t.Errorf("a fresh node claiming a new room: %+v %v", p, err)
	}
	// a renews and heartbeats, as its loops do: exam-1 is a's again, and
	// b is sent there.
	if err := a.Renew(ctx, "a", []string{"exam-1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Heartbeat(ctx, Node{ID: "a", URL: "http://a", Capacity: 100, FreeSeats: 100}); err != nil {
		t.Fatal(err)
	}
	if p, err := b.Claim(ctx, "exam-1", "b", 0); err != nil || p.NodeID != "a" {
		t.Errorf("b claiming exam-1 after a renewed: %+v %v, want a", p, err)
	}
	if p, err := a.Claim(ctx, "exam-1", "a", 0); err != nil || p.NodeID != "a" {
		t.Errorf("a re-claiming its own room: %+v %v", p, err)
	}
	// After SettleTime, b places unowned rooms again.
	testclient.Eventually(t, SettleTime+2*time.Second, "unowned rooms placed again", func() bool {
		p, err := b.Claim(ctx, "exam-3", "b", 0)
		return err == nil && p.NodeID == "b"
	})
}
