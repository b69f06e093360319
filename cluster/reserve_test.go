package cluster

import (
	"context"
	"testing"

	"github.com/invigil/invigil/internal/testredis"
)

// TestReservationShrinksOnArrival: a room placed with expected=3 reserves
// three seats on its node; each join that claims the room there takes
// one off the reservation and off the node's free seats at once, so the
// seat is counted once throughout; a claim by another node, or a claim
// past the reservation, changes nothing.
func TestReservationShrinksOnArrival(t *testing.T) {
	rs := testredis.Start(t, 0)
	ctx := context.Background()
	r := newRedis(t, rs.URL())
	heartbeatNodes(t, r, 2, 10)
	p, err := r.Place(ctx, "exam-r", 3)
	if err != nil {
		t.Fatal(err)
	}
	other := "n1"
	if p.NodeID == "n1" {
		other = "n2"
	}
	free := func(id string) int {
		v, err := r.rdb.HGet(ctx, r.prefix+"node:"+id, "free_seats").Int()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	sum := func(id string) int {
		v, _ := r.rdb.Get(ctx, r.prefix+"resvsum:"+id).Int()
		return v
	}
	if n, err := r.Reserved(ctx, p.NodeID, "exam-r"); err != nil || n != 3 || sum(p.NodeID) != 3 {
		t.Fatalf("reserved after placement: %d (sum %d) %v, want 3", n, sum(p.NodeID), err)
	}
	// A join reaching the other node is sent to the owner: no seat taken.
	if q, err := r.Claim(ctx, "exam-r", other, 0); err != nil || q.NodeID != p.NodeID {
		t.Fatalf("claim on the other node: %+v %v", q, err)
	}
	for k := 1; k <= 4; k++ {
		if _, err := r.Claim(ctx, "exam-r", p.NodeID, 0); err != nil {
			t.Fatal(err)
		}
		want := max(3-k, 0)
		n, err := r.Reserved(ctx, p.NodeID, "exam-r")
		if err != nil || n != want || sum(p.NodeID) != want {
			t.Fatalf("after %d arrivals: reserved %d (sum %d) %v, want %d", k, n, sum(p.NodeID), err, want)
		}
		if got, wantFree := free(p.NodeID), 10-min(k, 3); got != wantFree {
			t.Errorf("after %d arrivals: free_seats %d, want %d (the seat moved from the reservation)", k, got, wantFree)
		}
	}
	if free(other) != 10 {
		t.Errorf("the other node's free seats changed: %d", free(other))
	}
}

// TestClaimRacingHeartbeat: a join's claim and the node's heartbeat, in
// either order, count its reserved seat once. The heartbeat's free seats
// come from the node's own count, which has the joining participant
// (arriving or in the room) only when the heartbeat's ArrivalSeq reaches
// the claim's number; a claim the heartbeat's count does not have yet is
// subtracted from it, and one it has already leaves free_seats alone.
func TestClaimRacingHeartbeat(t *testing.T) {
	rs := testredis.Start(t, 0)
	ctx := context.Background()
	r := newRedis(t, rs.URL())
	const base = int64(1_764_000_000_000_000) // arrival numbers start at the clock in µs
	beat := func(free int, seq int64) {
		t.Helper()
		if err := r.Heartbeat(ctx, Node{ID: "n1", URL: "http://n1", Capacity: 10, FreeSeats: free, ArrivalSeq: seq}); err != nil {
			t.Fatal(err)
		}
	}
	free := func() int {
		t.Helper()
		v, err := r.rdb.HGet(ctx, r.prefix+"node:n1", "free_seats").Int()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	claim := func(seq int64) {
		t.Helper()
		if p, err := r.Claim(ctx, "exam-z", "n1", seq); err != nil || p.NodeID != "n1" {
			t.Fatalf("claim %d: %+v %v", seq, p, err)
		}
	}
	beat(10, base)
	if _, err := r.Place(ctx, "exam-z", 3); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		what     string
		do       func()
		free     int
		reserved int
	}{
		{"a claim the node has not counted", func() { claim(base + 1) }, 9, 2},
		// The heartbeat's snapshot was taken before the join began: its
		// count still has 10 free; the claim's seat must not come back.
		{"a heartbeat whose snapshot missed that claim", func() { beat(10, base) }, 9, 2},
		{"the next heartbeat, counting it arriving", func() { beat(9, base+1) }, 9, 2},
		// The heartbeat's snapshot has the next join arriving before its
		// claim reaches the store: the claim leaves free_seats alone.
		{"a heartbeat counting a join whose claim is still on its way", func() { beat(8, base+2) }, 8, 2},
		{"that claim", func() { claim(base + 2) }, 8, 1},
		{"a heartbeat after both", func() { beat(8, base+2) }, 8, 1},
	}
	for _, s := range steps {
		s.do()
		n, err := r.Reserved(ctx, "n1", "exam-z")
		if err != nil {
			t.Fatal(err)
		}
		if got := free(); got != s.free || n != s.reserved {
			t.Errorf("after %s: free_seats %d, reserved %d; want %d and %d", s.what, got, n, s.free, s.reserved)
		}
	}
	// The node restarted: its arrival numbers start at the clock again,
	// above the last heartbeat's.
	beat(8, base+5_000_000)
	claim(base + 5_000_001)
	if got := free(); got != 7 {
		t.Errorf("a claim after the node restarted: free_seats %d, want 7", got)
	}
}

// TestMemoryPlacesHeldRooms: alone, a draining or full node still places
// the rooms it holds on itself (their participants rejoin it), and no
// new one.
func TestMemoryPlacesHeldRooms(t *testing.T) {
	m := NewMemory("solo", "http://solo")
	m.Held = func(room string) bool { return room == "exam-held" }
	ctx := context.Background()
	m.Heartbeat(ctx, Node{ID: "solo", URL: "http://solo", Capacity: 10, FreeSeats: 0, Draining: true})
	if p, err := m.Place(ctx, "exam-held", 5); err != nil || p.NodeID != "solo" {
		t.Errorf("the held room while draining and full: %+v %v", p, err)
	}
	if _, err := m.Place(ctx, "exam-new", 0); err != ErrNoCapacity {
		t.Errorf("a new room while draining: %v, want ErrNoCapacity", err)
	}
}
