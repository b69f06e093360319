package main

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// next waits for the next message of type typ on c (others are skipped).
func next(t *testing.T, c *testclient.Client, typ string, pred func(testclient.Msg) bool) testclient.Msg {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-c.Events:
			if m.Type == typ && (pred == nil || pred(m)) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s message within 5 s", typ)
			return testclient.Msg{}
		}
	}
}

// eventOf matches a live audit event of kind.
func eventOf(kind string) func(testclient.Msg) bool {
	return func(m testclient.Msg) bool { return m.Event.Kind == kind }
}

// TestInterventions: a proctor messages a student (who sees it and
// acknowledges), flags and notes them, and ends their session (they are
// told why); a student's page reports violations, rate-limited; a student
// asking for a proctor's action is refused. Every step is an audit event
// the proctor sees live.
func TestInterventions(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	proctor := testclient.Join(t, wsURL(srv.base), secret, "exam-i", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-i", "alice", room.RoleStudent)
	bob := testclient.Join(t, wsURL(srv.base), secret, "exam-i", "bob", room.RoleStudent)

	proctor.Send(map[string]any{"v": 1, "type": "message", "identity": "alice", "text": "Please face the camera."})
	m := next(t, alice, "message", nil)
	got := next(t, proctor, "event", eventOf(room.EventMessage))
	if got.Event.Subject != "alice" || got.Event.Actor != "proctor-1" || got.Event.Details["text"] != "Please face the camera." {
		t.Errorf("message event %+v", got.Event)
	}
	if m.Text != "Please face the camera." || m.MessageID != got.Event.Seq || m.From != "proctor-1" {
		t.Errorf("alice's message %+v, want the text, message_id %d and the proctor's name", m, got.Event.Seq)
	}
	alice.Send(map[string]any{"v": 1, "type": "message_ack", "message_id": got.Event.Seq})
	ack := next(t, proctor, "event", eventOf(room.EventMessageAck))
	if ack.Event.Details["message_id"] != float64(got.Event.Seq) {
		t.Errorf("ack event %+v", ack.Event)
	}
	// A second acknowledgement, or one of a message never sent, is refused.
	alice.Send(map[string]any{"v": 1, "type": "message_ack", "message_id": got.Event.Seq})
	next(t, alice, "error", func(m testclient.Msg) bool { return m.Code == "malformed" })
	bob.Send(map[string]any{"v": 1, "type": "message_ack", "message_id": got.Event.Seq})
	next(t, bob, "error", func(m testclient.Msg) bool { return m.Code == "malformed" })

	proctor.Send(map[string]any{"v": 1, "type": "flag", "identity": "alice", "text": "looked away"})
	next(t, proctor, "event", eventOf(room.EventFlag))
	proctor.Send(map[string]any{"v": 1, "type": "note", "identity": "bob", "text": "ID checked"})
	next(t, proctor, "event", eventOf(room.EventNote))

	// A student may not act as a proctor.
	bob.Send(map[string]any{"v": 1, "type": "message", "identity": "alice", "text": "psst", "id": "b1"})
	if e := next(t, bob, "error", nil); e.Code != "forbidden" {
		t.Errorf("bob messaging alice: %+v", e)
	}
	next(t, proctor, "event", eventOf(room.EventForbidden))
	for _, typ := range []string{"flag", "end", "note", "talkback"} {
		bob.Send(map[string]any{"v": 1, "type": typ, "identity": "alice", "text": "x"})
		if e := next(t, bob, "error", nil); e.Code != "forbidden" {
			t.Errorf("bob sending %s about alice: %+v, want forbidden", typ, e)
		}
		f := next(t, proctor, "event", eventOf(room.EventForbidden))
		if f.Event.Actor != "bob" || f.Event.Details["request"] != typ {
			t.Errorf("forbidden event %+v, want bob's %s", f.Event, typ)
		}
	}
	// Nothing reached alice: no message, no end, no talk-back.
	for quiet := time.After(300 * time.Millisecond); ; {
		select {
		case m := <-alice.Events:
			if m.Type == "ended" || m.Type == "leave" || m.Type == "message" || m.Type == "talkback" {
				t.Fatalf("a student's forbidden request reached alice: %+v", m)
			}
			continue
		case <-quiet:
		}
		break
	}

	// Violations, rate-limited: 10 at once pass, then 30 a minute.
	for range 12 {
		bob.Send(map[string]any{"v": 1, "type": "violation", "kind": "tab_hidden", "details": map[string]any{"hidden_ms": 1200}})
	}
	v := next(t, proctor, "event", eventOf(room.EventViolation))
	if v.Event.Subject != "bob" || v.Event.Details["kind"] != "tab_hidden" || v.Event.Details["hidden_ms"] != float64(1200) {
		t.Errorf("violation event %+v", v.Event)
	}
	if e := next(t, bob, "error", nil); e.Code != "rate_limited" {
		t.Errorf("12 violations at once: %+v, want rate_limited", e)
	}
	bob.Send(map[string]any{"v": 1, "type": "violation", "kind": "Tab Hidden!"})
	next(t, bob, "error", func(m testclient.Msg) bool { return m.Code == "malformed" })

	proctor.Send(map[string]any{"v": 1, "type": "end", "identity": "alice", "text": "Phone on the desk."})
	if r := next(t, alice, "ended", nil); r.Reason != "Phone on the desk." {
		t.Errorf("alice's ended message %+v", r)
	}
	if l := next(t, alice, "leave", nil); l.Reason != room.ReasonEnded {
		t.Errorf("alice's leave %+v", l)
	}
	next(t, proctor, "event", eventOf(room.EventEnded))
	if p := next(t, proctor, "participant_left", nil); p.Participant.Identity != "alice" {
		t.Errorf("participant_left %+v", p)
	}
}

// TestForbiddenSpamBounded: a student spamming proctor requests gets
// forbidden for each, but only 10 become audit events at once (the trail,
// the webhook and the proctors' live feed stay bounded); the rest are
// counted, and the next event recorded says how many were left out.
func TestForbiddenSpamBounded(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	proctor := testclient.Join(t, wsURL(srv.base), secret, "exam-f", "proctor-1", room.RoleProctor)
	mallory := testclient.Join(t, wsURL(srv.base), secret, "exam-f", "mallory", room.RoleStudent)
	for range 40 {
		mallory.Send(map[string]any{"v": 1, "type": "focus", "identity": "mallory"})
	}
	for i := range 40 {
		if e := next(t, mallory, "error", nil); e.Code != "forbidden" {
			t.Fatalf("request %d answered %+v, want forbidden", i, e)
		}
	}
	events := 0
	for quiet := time.After(time.Second); ; {
		select {
		case m := <-proctor.Events:
			if m.Type == "event" && m.Event.Kind == room.EventForbidden {
				events++
			}
			continue
		case <-quiet:
		}
		break
	}
	if events != 10 {
		t.Errorf("%d forbidden events recorded for 40 requests, want 10 (then 10 a minute)", events)
	}
}
