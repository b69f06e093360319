package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
)

// TestAuditSurvivesCrash: a node is SIGKILLed in the middle of a burst of
// audit events; restarted on the same store, it returns every event
// whose answer a client had received before the kill, in order, with
// gap-free, unique sequence numbers. Once with the file log under
// --data-dir, once with Redis (appendonly) as the store.
func TestAuditSurvivesCrash(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		crashAndCheck(t, []string{"--data-dir", dir})
	})
	t.Run("redis", func(t *testing.T) {
		// In cluster mode an event is acknowledged once it is fsynced in
		// the node's spool (<data-dir>/spool), and shipped to Redis after:
		// the node restarts on its own data dir, as a pod on its volume,
		// and ships what Redis had not got before the kill.
		rs := testredis.Start(t, 0, "--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir())
		crashAndCheck(t, []string{"--redis-url", rs.URL(), "--data-dir", t.TempDir()})
	})
}

// crashAndCheck runs the burst against a node with args, kills it, and
// reads the trail back from a second node with the same args.
func crashAndCheck(t *testing.T, args []string) {
	const roomName, proctors, perProctor = "exam-crash", 4, 50
	n := startNodeProc(t, append(args, "--log-level", "info")...)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dial := func(identity string, role room.Role) *websocket.Conn {
		ws, _, err := websocket.Dial(ctx, wsURL(n.base), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseNow() })
		join, _ := json.Marshal(map[string]any{"v": 1, "type": "join", "id": "j",
			"token": testclient.Mint(t, secret, roomName, identity, role)})
		ws.Write(ctx, websocket.MessageText, join)
		if _, msg, err := ws.Read(ctx); err != nil || !json.Valid(msg) {
			t.Fatalf("join: %v", err)
		}
		return ws
	}
	dial("alice", room.RoleStudent)

	// Each proctor writes notes about alice. A note is appended to the
	// store (written and fsynced, or in Redis) before the proctors are
	// sent it live: an event a proctor received is one the node
	// acknowledged.
	var mu sync.Mutex
	acked := map[int64]bool{} // seqs of notes a proctor received
	var wg sync.WaitGroup
	for p := range proctors {
		ws := dial(fmt.Sprintf("proctor-%d", p), room.RoleProctor)
		wg.Go(func() {
			for {
				_, msg, err := ws.Read(ctx)
				if err != nil {
					return
				}
				var m struct {
					Type  string
					Event room.Event
				}
				json.Unmarshal(msg, &m)
				if m.Type == "event" && m.Event.Kind == room.EventNote {
					mu.Lock()
					acked[m.Event.Seq] = true
					mu.Unlock()
				}
			}
		})
		wg.Go(func() {
			for i := range perProctor {
				b, _ := json.Marshal(map[string]any{"v": 1, "type": "note", "identity": "alice", "text": fmt.Sprintf("note %d", i)})
				if ws.Write(ctx, websocket.MessageText, b) != nil {
					return
				}
			}
		})
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	testclient.Eventually(t, 10*time.Second, "the burst under way", func() bool { return count() >= 40 })
	n.cmd.Process.Kill() // SIGKILL, mid-burst
	n.cmd.Wait()
	cancel()
	wg.Wait()

	again := startNodeProc(t, args...)
	// In cluster mode the restarted node ships its spool's backlog to
	// Redis; the events API reads Redis. (Without Redis there is no spool
	// and no such gauge: value reads -1.)
	testclient.Eventually(t, 10*time.Second, "the spool shipped", func() bool {
		return value(parse(t, scrape(t, again.base)), "invigil_trail_spool_backlog_events", nil) <= 0
	})
	events := roomEvents(t, again.base, roomName)
	notes := map[int64]bool{}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: the trail has a gap or a repeat", i, e.Seq)
		}
		if e.Kind == room.EventNote {
			notes[e.Seq] = true
		}
	}
	lost := 0
	for seq := range acked {
		if !notes[seq] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of the %d notes the proctors had received before the kill are not in the trail after it", lost, len(acked))
	}
	t.Logf("%d notes acknowledged before the kill; %d notes (of %d events) read back", len(acked), len(notes), len(events))
}
