package main

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestResumeAfterConnectionLoss: a publishing student whose connection
// drops without a goodbye stays in the room (a disconnect event, no
// participant_left); rejoining within --resume-window is a reconnect with
// the gap on the record, and the proctor has media from them again. A
// student who does not come back leaves when the window closes.
func TestResumeAfterConnectionLoss(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--resume-window", "3s")
	proctor := testclient.Join(t, wsURL(srv.base), secret, "exam-r", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-r", "alice", room.RoleStudent)
	bob := testclient.Join(t, wsURL(srv.base), secret, "exam-r", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from both", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 30 && proctor.PacketsFrom(bob.Me.SID) > 30
	})

	alice.Drop()
	lost := time.Now()
	d := next(t, proctor, "event", func(m testclient.Msg) bool { return m.Event.Kind == room.EventDisconnect })
	if d.Event.Subject != "alice" {
		t.Fatalf("disconnect event %+v", d.Event)
	}
	time.Sleep(time.Second) // away for a second: the gap the reconnect must show
	back := testclient.Join(t, wsURL(srv.base), secret, "exam-r", "alice", room.RoleStudent)
	r := next(t, proctor, "event", func(m testclient.Msg) bool { return m.Event.Kind == room.EventReconnect })
	gap, _ := r.Event.Details["gap_ms"].(float64)
	if r.Event.Subject != "alice" || gap < 900 || gap > float64(time.Since(lost).Milliseconds()) {
		t.Errorf("reconnect event %+v: gap_ms should be the ~1 s alice was away", r.Event)
	}
	testclient.Eventually(t, 10*time.Second, "media from alice again", func() bool { return proctor.PacketsFrom(back.Me.SID) > 30 })

	// Bob drops and stays away: he leaves when the window closes.
	bob.Drop()
	next(t, proctor, "event", func(m testclient.Msg) bool { return m.Event.Kind == room.EventDisconnect && m.Event.Subject == "bob" })
	l := next(t, proctor, "event", func(m testclient.Msg) bool { return m.Event.Kind == room.EventLeave && m.Event.Subject == "bob" })
	if l.Event.Details["reason"] != room.ReasonDisconnect {
		t.Errorf("bob's leave %+v", l.Event)
	}
}
