package main

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestTalkback: a proctor talks to one student with their microphone.
// Only that student's PeerConnection receives it: the other students get
// not one packet, before, during or after. Turning to another student
// moves the audio; stopping, and the proctor leaving, end it. Each start
// and stop is an audit event, and a student may not talk back.
func TestTalkback(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	url := wsURL(srv.base)
	const roomName = "exam-talk"
	proctor := testclient.Join(t, url, secret, roomName, "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, url, secret, roomName, "alice", room.RoleStudent)
	bob := testclient.Join(t, url, secret, roomName, "bob", room.RoleStudent)
	carol := testclient.Join(t, url, secret, roomName, "carol", room.RoleStudent)
	students := []*testclient.Client{alice, bob, carol}
	// The proctor's negotiation settles once it receives every student.
	testclient.Eventually(t, 15*time.Second, "the proctor receiving every student", func() bool {
		for _, s := range students {
			if proctor.PacketsFrom(s.Me.SID) == 0 {
				return false
			}
		}
		return true
	})
	proctor.PublishTalkback()
	pub := next(t, proctor, "event", func(m testclient.Msg) bool {
		return m.Event.Kind == room.EventTrackPublished && m.Event.Subject == "proctor-1"
	})
	if pub.Event.Details["source"] != room.SourceTalkback || pub.Event.Details["kind"] != "audio" {
		t.Fatalf("the proctor's microphone was published as %+v", pub.Event.Details)
	}
	mic := proctor.Me.SID // the stream id of the proctor's tracks
	heard := func(c *testclient.Client) int64 { return c.PacketsFrom(mic) }

	// Published, but spoken to nobody yet: nobody receives it while the
	// proctor sends half a second of it.
	sent := proctor.TalkbackSent.Load()
	testclient.Eventually(t, 10*time.Second, "half a second of talk-back sent", func() bool { return proctor.TalkbackSent.Load() >= sent+25 })
	for _, s := range students {
		if n := heard(s); n != 0 {
			t.Fatalf("%s received %d talk-back packets before anyone was spoken to", s.Me.Identity, n)
		}
	}

	talkTo := func(identity string) { proctor.Send(map[string]any{"v": 1, "type": "talkback", "identity": identity}) }
	talkTo("alice")
	if m := next(t, alice, "talkback", nil); !m.Talking || m.StreamID != mic || m.From != "proctor-1" {
		t.Errorf("alice was told %+v; want talking from proctor-1 on stream %s", m, mic)
	}
	if e := next(t, proctor, "event", eventOf(room.EventTalkbackStarted)); e.Event.Subject != "alice" || e.Event.Actor != "proctor-1" {
		t.Errorf("talkback_started %+v", e.Event)
	}
	testclient.Eventually(t, 10*time.Second, "alice hearing the proctor", func() bool { return heard(alice) > 25 })

	talkTo("bob")
	if m := next(t, alice, "talkback", nil); m.Talking {
		t.Errorf("alice was told %+v when the proctor turned to bob; want talking false", m)
	}
	if m := next(t, bob, "talkback", nil); !m.Talking {
		t.Errorf("bob was told %+v; want talking", m)
	}
	testclient.Eventually(t, 10*time.Second, "bob hearing the proctor", func() bool { return heard(bob) > 25 })
	// Alice's down-track is gone (the server removed it before it gave
	// bob his): her count stops, once what was in flight has landed,
	// while bob hears 35 more packets (0.7 s).
	bobAt := heard(bob)
	testclient.Eventually(t, 10*time.Second, "bob hearing 10 more packets", func() bool { return heard(bob) >= bobAt+10 })
	before := heard(alice)
	bobAt = heard(bob)
	testclient.Eventually(t, 10*time.Second, "bob hearing 35 more packets", func() bool { return heard(bob) >= bobAt+35 })
	if after := heard(alice); after != before {
		t.Errorf("alice still receives the proctor after the turn to bob: %d → %d packets", before, after)
	}

	// A student may not talk to another.
	alice.Send(map[string]any{"v": 1, "type": "talkback", "identity": "carol"})
	if e := next(t, alice, "error", nil); e.Code != "forbidden" {
		t.Errorf("alice asking to talk to carol: %+v, want forbidden", e)
	}
	// Nor to a student who is not there.
	proctor.Send(map[string]any{"v": 1, "type": "talkback", "identity": "mallory"})
	if e := next(t, proctor, "error", nil); e.Code != "malformed" {
		t.Errorf("talking to a student not in the room: %+v, want malformed", e)
	}

	talkTo("")
	if m := next(t, bob, "talkback", nil); m.Talking {
		t.Errorf("bob was told %+v when the proctor stopped", m)
	}
	next(t, proctor, "event", func(m testclient.Msg) bool {
		return m.Event.Kind == room.EventTalkbackStopped && m.Event.Subject == "bob"
	})

	// Talking when the proctor leaves: the student is told it stopped.
	talkTo("alice")
	next(t, alice, "talkback", func(m testclient.Msg) bool { return m.Talking })
	proctor.Close()
	if m := next(t, alice, "talkback", nil); m.Talking {
		t.Errorf("alice was told %+v when the proctor left", m)
	}

	if n := heard(carol); n != 0 {
		t.Errorf("carol, never spoken to, received %d talk-back packets", n)
	}

	// The trail, in order.
	var got []string
	testclient.Eventually(t, 5*time.Second, "the last talk-back event in the trail", func() bool {
		got = got[:0]
		for _, e := range roomEvents(t, srv.base, roomName) {
			switch e.Kind {
			case room.EventTalkbackStarted, room.EventTalkbackStopped:
				reason, _ := e.Details["reason"].(string)
				got = append(got, e.Kind+" "+e.Subject+" "+reason)
			}
		}
		return len(got) == 6
	})
	want := []string{
		"talkback_started alice ", "talkback_stopped alice stopped",
		"talkback_started bob ", "talkback_stopped bob stopped",
		"talkback_started alice ", "talkback_stopped alice proctor_left",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("talk-back events %q, want %q", got, want)
		}
	}
}

// TestTalkbackSurvivesReconnect: a student whose connection drops while a
// proctor talks to them, and who comes back within the resume window,
// hears the proctor again at once: the talk-back moves to the new
// session, with no stop and start in the trail.
func TestTalkbackSurvivesReconnect(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	url := wsURL(srv.base)
	proctor := testclient.Join(t, url, secret, "exam-talk2", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, url, secret, "exam-talk2", "alice", room.RoleStudent)
	testclient.Eventually(t, 15*time.Second, "alice at the proctor", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 20 })
	proctor.PublishTalkback()
	proctor.Send(map[string]any{"v": 1, "type": "talkback", "identity": "alice"})
	testclient.Eventually(t, 10*time.Second, "alice hearing the proctor", func() bool { return alice.PacketsFrom(proctor.Me.SID) > 25 })

	alice.Drop() // Wi-Fi gone: no leave
	next(t, proctor, "event", eventOf(room.EventDisconnect))
	again := testclient.Join(t, url, secret, "exam-talk2", "alice", room.RoleStudent)
	if m := next(t, again, "talkback", nil); !m.Talking || m.StreamID != proctor.Me.SID {
		t.Errorf("the reconnected session was told %+v; want the proctor still talking", m)
	}
	testclient.Eventually(t, 10*time.Second, "the reconnected alice hearing the proctor", func() bool { return again.PacketsFrom(proctor.Me.SID) > 25 })
	next(t, proctor, "event", eventOf(room.EventReconnect))
	for quiet := time.After(300 * time.Millisecond); ; {
		select {
		case m := <-proctor.Events:
			if m.Type == "event" && m.Event.Kind == room.EventTalkbackStopped {
				t.Fatalf("the reconnection stopped the talk-back: %+v", m.Event)
			}
			continue
		case <-quiet:
		}
		break
	}
}
