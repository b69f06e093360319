package metrics

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestCapacity(t *testing.T) {
	cases := []struct {
		name         string
		in           Capacity
		free, weight int
		stress       float64
		reply        string
	}{
		{"idle", Capacity{MaxParticipants: 100, MaxRooms: 10}, 100, 100, 0, "ready up 100%\n"},
		{"quarter seats", Capacity{Students: 20, Proctors: 5, MaxParticipants: 100, Rooms: 1, MaxRooms: 10}, 75, 75, 0.25, "ready up 75%\n"},
		{"rooms bind first", Capacity{Students: 5, MaxParticipants: 100, Rooms: 8, MaxRooms: 10}, 95, 19, 0.8, "ready up 19%\n"},
		{"full", Capacity{Students: 120, MaxParticipants: 100, MaxRooms: 10}, 0, 0, 1, "ready up 1%\n"},
		{"draining", Capacity{Draining: true, MaxParticipants: 100, MaxRooms: 10}, 100, 0, 0, "drain\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.in.Compute()
			if c.FreeSeats != tc.free || c.Weight != tc.weight || (c.Stress-tc.stress) > 1e-9 || (tc.stress-c.Stress) > 1e-9 {
				t.Errorf("got free %d weight %d stress %v", c.FreeSeats, c.Weight, c.Stress)
			}
			if r := AgentReply(c); r != tc.reply {
				t.Errorf("agent reply %q, want %q", r, tc.reply)
			}
		})
	}
}

// TestAgent answers over a real TCP connection, as HAProxy reads it.
func TestAgent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var draining atomic.Bool
	a := ServeAgent(ln, func() Capacity {
		return Capacity{Students: 50, MaxParticipants: 100, Draining: draining.Load()}.Compute()
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer a.Close(t.Context())
	read := func() string {
		c, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := read(); got != "ready up 50%\n" {
		t.Errorf("serving: %q", got)
	}
	draining.Store(true)
	if got := read(); got != "drain\n" {
		t.Errorf("draining: %q", got)
	}
	rec := httptest.NewRecorder()
	CapacityHandler(func() Capacity { return Capacity{NodeID: "n1", Students: 3, MaxParticipants: 10}.Compute() }).ServeHTTP(rec, httptest.NewRequest("GET", "/capacity", nil))
	var c Capacity
	if err := json.NewDecoder(rec.Body).Decode(&c); err != nil || c.NodeID != "n1" || c.FreeSeats != 7 || c.Weight != 70 {
		t.Errorf("capacity JSON %+v %v", c, err)
	}
}
