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
	if q, err := r.Claim(ctx, "exam-r", other); err != nil || q.NodeID != p.NodeID {
		t.Fatalf("claim on the other node: %+v %v", q, err)
	}
	for k := 1; k <= 4; k++ {
		if _, err := r.Claim(ctx, "exam-r", p.NodeID); err != nil {
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
