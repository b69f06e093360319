package signaling

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestLossRecoveredByRetransmission: the proctor's socket drops 5% of the
// RTP it receives; its NACKs are answered from the server's layer cache,
// and what is still missing afterwards stays under 0.5%.
func TestLossRecoveredByRetransmission(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "proctor-1", Role: room.RoleProctor, DropInbound: 0.05})
	alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media at the proctor", func() bool { return proctor.VideoFrom(alice.Me.SID).Packets > 0 })
	// Eight seconds of video at 30 packets a second, counted on the wire.
	testclient.Eventually(t, 30*time.Second, "240 of alice's video packets sent to the proctor", func() bool {
		v := proctor.VideoFrom(alice.Me.SID)
		return int(v.Highest-v.First)+1 >= 240
	})
	v := proctor.VideoFrom(alice.Me.SID)
	stats := srv.engine.Stats()
	t.Logf("video: %d distinct of %d sent, loss after recovery %.3f%%; server NACKs %d, retransmits %d",
		v.Unique, int(v.Highest-v.First)+1, 100*v.Loss(), stats.NACKs, stats.Retransmits)
	if stats.NACKs == 0 || stats.Retransmits == 0 {
		t.Fatalf("no NACK answered: %+v", stats)
	}
	if loss := v.Loss(); loss >= 0.005 {
		t.Errorf("loss after retransmission %.2f%%, want < 0.5%%", 100*loss)
	}
}

// TestCongestionDropsFocusLayer: when the proctor's REMB says its downlink
// cannot carry the focused student's high layer, the server drops that
// student to the low layer, and brings it back when the estimate
// recovers.
func TestCongestionDropsFocusLayer(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, Simulcast: true})
	proctor.Send(map[string]any{"v": 1, "type": "focus", "identity": "alice"})
	testclient.Eventually(t, 10*time.Second, "the focused high layer", func() bool { return proctor.VideoFrom(alice.Me.SID).LastTag == 'h' })

	remb := func(bps float64, until func() bool, what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !until() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			if err := proctor.SendREMB(bps); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	start := time.Now()
	remb(100_000, func() bool { return proctor.VideoFrom(alice.Me.SID).LastTag == 'q' }, "the low layer under a 100 kb/s estimate")
	t.Logf("dropped to the low layer %s after the estimate fell", time.Since(start).Round(time.Millisecond))
	audioBefore := proctor.PacketsFrom(alice.Me.SID) - int64(proctor.VideoFrom(alice.Me.SID).Packets)
	start = time.Now()
	remb(10_000_000, func() bool { return proctor.VideoFrom(alice.Me.SID).LastTag == 'h' }, "the high layer once the estimate recovered")
	t.Logf("back on the high layer %s after the estimate recovered", time.Since(start).Round(time.Millisecond))
	if audio := proctor.PacketsFrom(alice.Me.SID) - int64(proctor.VideoFrom(alice.Me.SID).Packets); audio <= audioBefore {
		t.Error("audio stopped while video was capped")
	}
}
