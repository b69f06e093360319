package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/cluster"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/metrics"
	"github.com/invigil/invigil/room"
)

// capacityOf reads base's /capacity.
func capacityOf(t *testing.T, base string) metrics.Capacity {
	t.Helper()
	resp, err := http.Get(base + "/capacity")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c metrics.Capacity
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// signalJoin opens a WebSocket to url and joins with token, without
// media (it never negotiates): it returns the open socket once joined.
func signalJoin(ctx context.Context, url, token string) (*websocket.Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(map[string]any{"v": 1, "type": "join", "token": token, "id": "j"})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		ws.CloseNow()
		return nil, err
	}
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return nil, err
		}
		var m testclient.Msg
		json.Unmarshal(msg, &m)
		switch m.Type {
		case "joined":
			// Keep reading (and dropping) what follows, so the server's
			// offer and announcements never back up.
			go func() {
				for {
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			return ws, nil
		case "error":
			ws.CloseNow()
			return nil, fmt.Errorf("join: %s %s", m.Code, m.Message)
		}
	}
}

// TestJoinStorm: three nodes on a real redis-server, 30 rooms x 25
// students placed with expected=25 and joined over WebSocket (signaling
// only) all at once, within 10 s. No node goes past its capacity, the
// rooms spread 10/10/10, and each room's reservation shrinks as its
// students arrive (read back from Redis: to 0 once all 25 are in). The
// seats are then counted once: each node, at 250 of 260, still takes a
// room of 10 and none takes one of 11.
func TestJoinStorm(t *testing.T) {
	const rooms, students, capacity = 30, 25, 260
	rs := testredis.Start(t, 0)
	args := []string{"--api-secret", secret, "--redis-url", rs.URL(),
		"--max-participants-per-node", fmt.Sprint(capacity),
		"--max-connections-per-ip", "2000", "--connection-rate-per-ip", "5000", "--connection-burst-per-ip", "5000",
		"--message-rate-per-ip", "10000"}
	nodes := map[string]string{}
	var bases []string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("n%d", i)
		s := startServe(t, append(args, "--node-id", id)...)
		nodes[id] = s.base
		bases = append(bases, s.base)
	}
	rc, err := cluster.NewRedis(rs.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ctx := context.Background()
	testclient.Eventually(t, 6*time.Second, "three nodes heartbeating", func() bool {
		ns, err := rc.Nodes(ctx)
		return err == nil && len(ns) == 3
	})

	tokens := make([][]string, rooms)
	for r := range rooms {
		for s := range students {
			tokens[r] = append(tokens[r], testclient.Mint(t, secret, fmt.Sprintf("storm-%02d", r), fmt.Sprintf("s%02d", s), room.RoleStudent))
		}
	}
	var (
		mu      sync.Mutex
		owner   = map[string]string{} // room → node id
		sockets []*websocket.Conn
		shrunk  []string // the watched room's reservation after each join
	)
	t.Cleanup(func() {
		for _, ws := range sockets {
			ws.CloseNow()
		}
	})
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for r := range rooms {
		wg.Go(func() {
			name := fmt.Sprintf("storm-%02d", r)
			code, p := place(t, bases[r%3], name, students)
			if code != http.StatusOK || nodes[p.NodeID] != p.URL {
				t.Errorf("placing %s: %d %+v", name, code, p)
				return
			}
			mu.Lock()
			owner[name] = p.NodeID
			mu.Unlock()
			join := func(s int) {
				ws, err := signalJoin(jctx, wsURL(p.URL), tokens[r][s])
				if err != nil {
					t.Errorf("%s s%02d: %v", name, s, err)
					return
				}
				mu.Lock()
				sockets = append(sockets, ws)
				mu.Unlock()
			}
			if r == 0 {
				// One room joins one student at a time, its reservation
				// read back after each.
				for s := range students {
					join(s)
					n, err := rc.Reserved(ctx, p.NodeID, name)
					mu.Lock()
					shrunk = append(shrunk, fmt.Sprint(n, err))
					mu.Unlock()
				}
				return
			}
			var sw sync.WaitGroup
			for s := range students {
				sw.Go(func() { join(s) })
			}
			sw.Wait()
		})
	}
	wg.Wait()
	took := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d joins in %s", rooms*students, took)
	if took > 10*time.Second {
		t.Errorf("the storm took %s, more than 10 s", took)
	}
	for k, got := range shrunk {
		if want := fmt.Sprint(students-k-1, nil); got != want {
			t.Errorf("storm-00's reservation after %d arrivals: %s, want %s", k+1, got, want)
		}
	}

	per := map[string]int{}
	for name, id := range owner {
		per[id]++
		if n, err := rc.Reserved(ctx, id, name); err != nil || n != 0 {
			t.Errorf("%s on %s: %d seats still reserved (%v) with all %d students in", name, id, n, err, students)
		}
	}
	lo, hi := rooms, 0
	for id, base := range nodes {
		c := capacityOf(t, base)
		lo, hi = min(lo, per[id]), max(hi, per[id])
		if c.Students+c.Proctors > capacity {
			t.Errorf("%s past its capacity: %d participants of %d", id, c.Students+c.Proctors, capacity)
		}
		if c.Rooms != per[id] || c.Students != per[id]*students {
			t.Errorf("%s holds %d rooms and %d students; placement put %d rooms there", id, c.Rooms, c.Students, per[id])
		}
		if sum, _ := rc.Client().Get(ctx, rc.Prefix()+"resvsum:"+id).Int(); sum != 0 {
			t.Errorf("%s: resvsum %d after the storm, want 0", id, sum)
		}
	}
	if hi-lo > 1 {
		t.Errorf("rooms per node %v: not within one of even", per)
	}
	// Counted once: 10 seats are left on each node, not minus the
	// reservations again.
	if code, p := place(t, bases[0], "after-10", 10); code != http.StatusOK {
		t.Errorf("a room of 10 after the storm: %d %+v (seats counted twice?)", code, p)
	}
	if code, p := place(t, bases[0], "after-11", 11); code != http.StatusServiceUnavailable || p.Code != "no_capacity" {
		t.Errorf("a room of 11 after the storm: %d %+v, want 503 no_capacity", code, p)
	}
}

// TestReadyzFullAndOwnRooms: alone, a node at --max-rooms answers
// /readyz 503 (it would refuse a new room), and while it drains
// /v1/placement still names it for a room it holds (its participants
// rejoin it) and answers 503 no_capacity for a new one.
func TestReadyzFullAndOwnRooms(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--max-rooms", "1")
	if code := readyz(t, srv.base); code != http.StatusOK {
		t.Fatalf("/readyz empty: %d", code)
	}
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-one", "alice", room.RoleStudent)
	_ = alice
	if code := readyz(t, srv.base); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz at --max-rooms: %d, want 503", code)
	}
	if m := joinReply(t, srv.base, "exam-two", "bob", room.RoleStudent); m["code"] != "too_many_rooms" {
		t.Errorf("a second room at --max-rooms: %v", m)
	}
	if code := drainHTTP(t, http.MethodPost, srv.base, "", ""); code != http.StatusOK {
		t.Fatalf("drain: %d", code)
	}
	testclient.Eventually(t, 5*time.Second, "the held room placed on the draining node", func() bool {
		code, p := place(t, srv.base, "exam-one", 0)
		return code == http.StatusOK && p.URL == srv.base
	})
	// A new room is refused once the heartbeat (every 2 s) says draining.
	testclient.Eventually(t, 5*time.Second, "a new room refused on the draining node", func() bool {
		code, p := place(t, srv.base, "exam-new", 0)
		return code == http.StatusServiceUnavailable && p.Code == "no_capacity"
	})
	if code, p := place(t, srv.base, "exam-one", 0); code != http.StatusOK || p.URL != srv.base {
		t.Errorf("the held room on the draining node: %d %+v", code, p)
	}
}
