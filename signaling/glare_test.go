package signaling

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestGlareClientYields: a proctor's offer (its talk-back microphone)
// crosses the server's (a new student to receive). The server is the
// impolite peer: it ignores the proctor's offer and answers glare; the
// proctor rolls back, answers the server's offer and offers again
// (docs/protocol.md, "Flow"). Both negotiations land: the proctor
// receives the new student, and the student it talks to hears it.
func TestGlareClientYields(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "alice at the proctor", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 10 })

	// The server's offer for bob's tracks is held, unanswered, so the
	// proctor's own offer must cross it.
	proctor.HoldOffers()
	bob := srv.join(t, "exam-1", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "the server's offer for bob", func() bool { return proctor.HeldOffers() > 0 })
	proctor.PublishTalkback()
	proctor.ReleaseOffers()

	testclient.Eventually(t, 10*time.Second, "bob at the proctor", func() bool { return proctor.PacketsFrom(bob.Me.SID) > 10 })
	proctor.Send(map[string]any{"v": 1, "type": "talkback", "identity": "bob"})
	testclient.Eventually(t, 10*time.Second, "bob hearing the proctor", func() bool { return bob.PacketsFrom(proctor.Me.SID) > 10 })
	if n := alice.PacketsFrom(proctor.Me.SID); n != 0 {
		t.Errorf("alice, not spoken to, received %d talk-back packets", n)
	}
}
