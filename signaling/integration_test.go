package signaling

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestProctorReceivesStudents is the media path end to end with real pion
// peers: two students publish, a proctor receives both; students receive
// nothing of each other; a late proctor's arrival reaches the students as
// a keyframe request.
func TestProctorReceivesStudents(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
	bob := srv.join(t, "exam-1", "bob", room.RoleStudent)

	testclient.Eventually(t, 10*time.Second, "proctor receiving both students", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 30 && proctor.PacketsFrom(bob.Me.SID) > 30
	})
	if tracks, _ := proctor.TotalReceived(); tracks != 4 {
		t.Errorf("proctor has %d remote tracks, want 4 (video+audio of 2 students)", tracks)
	}
	for _, want := range []string{"alice", "bob"} {
		m, ok := proctor.NextEvent(TypeParticipantJoined, time.Second)
		if !ok {
			t.Fatalf("proctor was not told %s joined", want)
		}
		if m.Participant.Identity != "alice" && m.Participant.Identity != "bob" {
			t.Errorf("proctor told of %q joining", m.Participant.Identity)
		}
	}

	// A late proctor: both students are asked for a keyframe.
	plisA, plisB := alice.PLIs.Load(), bob.PLIs.Load()
	late := srv.join(t, "exam-1", "proctor-2", room.RoleProctor)
	if len(late.View) != 2 {
		t.Errorf("late proctor's joined lists %d participants, want the 2 students", len(late.View))
	}
	for _, p := range late.View {
		if len(p.Tracks) != 2 {
			t.Errorf("late proctor sees %s with %d tracks, want 2", p.Identity, len(p.Tracks))
		}
	}
	testclient.Eventually(t, 10*time.Second, "late proctor receiving both students", func() bool {
		return late.PacketsFrom(alice.Me.SID) > 10 && late.PacketsFrom(bob.Me.SID) > 10
	})
	testclient.Eventually(t, 5*time.Second, "a PLI at each student after the late proctor joined", func() bool {
		return alice.PLIs.Load() > plisA && bob.PLIs.Load() > plisB
	})

	// Privacy: students received no media and no word of anyone.
	for _, s := range []*testclient.Client{alice, bob} {
		if tracks, packets := s.TotalReceived(); tracks != 0 || packets != 0 {
			t.Errorf("student %s received %d tracks / %d packets", s.Me.Identity, tracks, packets)
		}
		if len(s.View) != 0 {
			t.Errorf("student %s's joined listed %v", s.Me.Identity, s.View)
		}
		select {
		case m := <-s.Events:
			t.Errorf("student %s was sent %s", s.Me.Identity, m.Type)
		default:
		}
	}
}

// TestStudentRejoins: a student leaves and comes back; the proctor is told
// both and receives the new session's media.
func TestStudentRejoins(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	first := srv.join(t, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from alice", func() bool { return proctor.PacketsFrom(first.Me.SID) > 10 })

	first.Send(map[string]any{"v": 1, "type": "leave"})
	left, ok := proctor.NextEvent(TypeParticipantLeft, 5*time.Second)
	if !ok || left.Participant.Identity != "alice" || left.Reason != room.ReasonLeft {
		t.Fatalf("proctor got %+v, want alice left", left)
	}
	first.Close()

	second := srv.join(t, "exam-1", "alice", room.RoleStudent)
	if second.Me.SID == first.Me.SID {
		t.Fatal("rejoin reused the session id")
	}
	testclient.Eventually(t, 10*time.Second, "media from alice's second session", func() bool { return proctor.PacketsFrom(second.Me.SID) > 10 })
}

// TestSecondSessionReplacesFirst: one live session per identity; the old
// one is told it was replaced and the proctor keeps one alice.
func TestSecondSessionReplacesFirst(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	first := srv.join(t, "exam-1", "alice", room.RoleStudent)
	second := srv.join(t, "exam-1", "alice", room.RoleStudent)

	m, ok := first.NextEvent(TypeLeave, 5*time.Second)
	if !ok || m.Reason != room.ReasonReplaced {
		t.Fatalf("first session got %+v, want leave replaced", m)
	}
	testclient.Eventually(t, 10*time.Second, "media from the second session", func() bool { return proctor.PacketsFrom(second.Me.SID) > 10 })
	if s := srv.rooms.Stats(); s.Students != 1 || s.Proctors != 1 {
		t.Errorf("rooms hold %+v, want 1 student and 1 proctor", s)
	}
}
