package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/testclient"
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
		rs := startRedisProc(t, 0, "--appendonly", "yes", "--appendfsync", "always", "--dir", t.TempDir())
		crashAndCheck(t, []string{"--redis-url", rs.url()})
	})
}

// crashAndCheck runs the burst against a node with args, kills it, and
// reads the trail back from a second node with the same args.
func crashAndCheck(t *testing.T, args []string) {
	const roomName, students, perStudent = "exam-crash", 4, 50
	n := startNodeProc(t, append(args, "--log-level", "info")...)

	// Each student asks for what only proctors may: every refusal is an
	// audit event, recorded before the refusal is sent (the ack).
	var acked atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for s := range students {
		ws, _, err := websocket.Dial(ctx, wsURL(n.base), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		join, _ := json.Marshal(map[string]any{"v": 1, "type": "join", "id": "j",
			"token": testclient.Mint(t, secret, roomName, fmt.Sprintf("student-%d", s), room.RoleStudent)})
		ws.Write(ctx, websocket.MessageText, join)
		if _, msg, err := ws.Read(ctx); err != nil || !json.Valid(msg) {
			t.Fatalf("join: %v", err)
		}
		wg.Go(func() {
			for {
				_, msg, err := ws.Read(ctx)
				if err != nil {
					return
				}
				var m struct{ Type, Code string }
				json.Unmarshal(msg, &m)
				if m.Type == "error" && m.Code == "forbidden" {
					acked.Add(1)
				}
			}
		})
		wg.Go(func() {
			for i := range perStudent {
				b, _ := json.Marshal(map[string]any{"v": 1, "type": "focus", "identity": "x", "id": fmt.Sprint(i)})
				if ws.Write(ctx, websocket.MessageText, b) != nil {
					return
				}
			}
		})
	}
	testclient.Eventually(t, 10*time.Second, "the burst under way", func() bool { return acked.Load() >= 40 })
	n.cmd.Process.Kill() // SIGKILL, mid-burst
	n.cmd.Wait()
	cancel()
	wg.Wait()
	ackedBeforeKill := acked.Load()

	again := startNodeProc(t, args...)
	req, _ := http.NewRequest(http.MethodGet, again.base+"/v1/rooms/"+roomName+"/events?limit=10000", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Events []room.Event `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events after restart: HTTP %d, %v", resp.StatusCode, err)
	}
	forbidden := 0
	for i, e := range body.Events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: the trail has a gap or a repeat", i, e.Seq)
		}
		if e.Kind == room.EventForbidden {
			forbidden++
		}
	}
	if int64(forbidden) < ackedBeforeKill {
		t.Errorf("%d forbidden events survived, but %d refusals had reached clients before the kill", forbidden, ackedBeforeKill)
	}
	t.Logf("%d refusals acknowledged before the kill; %d forbidden events (of %d) read back", ackedBeforeKill, forbidden, len(body.Events))
}
