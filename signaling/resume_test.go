package signaling

import (
	"testing"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestMediaPathCut: a pion student whose UDP path is cut for 5 s stays
// the same participant (no leave, no second join): the trail gets
// disconnect and then reconnect with the gap, and the proctor receives
// the student's media again.
func TestMediaPathCut(t *testing.T) {
	store, err := audit.NewFileStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := newTestServer(t, room.Config{Events: store})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, Cuttable: true})
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 5 })

	nextKind(t, proctor, room.EventTrackPublished)
	nextKind(t, proctor, room.EventTrackPublished)

	const cut = 5 * time.Second
	alice.CutUDP(cut)
	start := time.Now()
	var kinds []string
	var down, up room.Event
	for up.Kind == "" {
		m, ok := proctor.NextEvent(TypeEvent, 15*time.Second)
		if !ok {
			t.Fatalf("no reconnect; events %v", kinds)
		}
		kinds = append(kinds, m.Event.Kind)
		switch m.Event.Kind {
		case room.EventDisconnect:
			down = m.Event
			if took := time.Since(start); took > cut {
				t.Errorf("disconnect seen %s after the cut; the cut lasted %s", took, cut)
			}
		case room.EventReconnect:
			up = m.Event
		case room.EventLeave, room.EventJoin:
			t.Fatalf("the student left or joined again: %v", kinds)
		}
	}
	if down.Subject != "alice" || down.Details["sid"] != alice.Me.SID || up.Details["sid"] != alice.Me.SID {
		t.Errorf("disconnect %+v, reconnect %+v", down, up)
	}
	if gap, _ := up.Details["gap_ms"].(float64); gap < 1000 || gap > float64((cut+3*time.Second).Milliseconds()) {
		t.Errorf("gap_ms %v for a %s cut", up.Details["gap_ms"], cut)
	}
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "media again", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+20 })
}

// nextKind waits for the proctor's next live event of kind, skipping others.
func nextKind(t *testing.T, c *testclient.Client, kind string) room.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m, ok := c.NextEvent(TypeEvent, time.Until(deadline))
		if ok && m.Event.Kind == kind {
			return m.Event
		}
	}
	t.Fatalf("no %s event", kind)
	return room.Event{}
}
