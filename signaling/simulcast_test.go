package signaling

import (
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestSimulcastFocus: a student publishes two layers; the proctor's grid
// gets the low one and the layer nobody watches is paused at the source;
// focusing switches to the high layer as one continuous stream, and back;
// a view that hides a student stops its video but not its audio.
func TestSimulcastFocus(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, Simulcast: true})
	bob := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "bob", Role: room.RoleStudent, Simulcast: true})

	layers := func(c *testclient.Client, want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		var seen []string
		for {
			select {
			case m := <-c.Events:
				seen = append(seen, m.Type+":"+join(m.Active))
				if m.Type == TypeLayers && len(m.Active) > 0 && join(m.Active) == want {
					return
				}
			case <-deadline:
				t.Fatalf("%s was not told layers %s; got %v", c.Me.Identity, want, seen)
			}
		}
	}
	// Only the grid layer is watched: h is paused at the source.
	layers(alice, "q")
	testclient.Eventually(t, 10*time.Second, "alice's low layer at the proctor", func() bool {
		v := proctor.VideoFrom(alice.Me.SID)
		return v.Tags['q'] > 20 && v.LastTag == 'q'
	})
	if v := proctor.VideoFrom(alice.Me.SID); v.Tags['h'] != 0 {
		t.Errorf("grid tile received %d high-layer packets", v.Tags['h'])
	}

	// Focus alice: her high layer is resumed and switched to.
	proctor.Send(map[string]any{"v": 1, "type": "focus", "identity": "alice"})
	layers(alice, "q,h")
	start := time.Now()
	testclient.Eventually(t, 5*time.Second, "alice's high layer at the proctor", func() bool {
		v := proctor.VideoFrom(alice.Me.SID)
		return v.Tags['h'] > 20 && v.LastTag == 'h'
	})
	t.Logf("focus switch to the high layer took %s", time.Since(start).Round(time.Millisecond))
	if v := proctor.VideoFrom(bob.Me.SID); v.LastTag != 'q' {
		t.Errorf("bob's tile switched too: last layer %c", v.LastTag)
	}

	// Back to the grid.
	proctor.Send(map[string]any{"v": 1, "type": "focus", "identity": ""})
	testclient.Eventually(t, 5*time.Second, "alice back on the low layer", func() bool {
		return proctor.VideoFrom(alice.Me.SID).LastTag == 'q'
	})
	layers(alice, "q")
	v := proctor.VideoFrom(alice.Me.SID)
	if v.SeqGaps != 0 || v.TSBackward != 0 || v.PicGaps != 0 {
		t.Errorf("alice's stream was not continuous through two switches: %d seq gaps, %d timestamps back, %d picture ID gaps",
			v.SeqGaps, v.TSBackward, v.PicGaps)
	}

	// Hide bob's tile: his video stops, his audio does not.
	// Once the server has applied the view (Sync) and what was in flight
	// has landed (alice's next packets), bob's count is watched while
	// alice sends about a second more.
	proctor.Send(map[string]any{"v": 1, "type": "view", "tiles": []map[string]any{{"identity": "alice", "height": 180}}})
	proctor.Sync()
	aliceFlows(t, proctor, alice, 10)
	videoBefore, allBefore := proctor.VideoFrom(bob.Me.SID).Packets, proctor.PacketsFrom(bob.Me.SID)
	aliceFlows(t, proctor, alice, 30)
	videoAfter, allAfter := proctor.VideoFrom(bob.Me.SID).Packets, proctor.PacketsFrom(bob.Me.SID)
	if videoAfter != videoBefore {
		t.Errorf("hidden tile still got %d video packets", videoAfter-videoBefore)
	}
	if audio := (allAfter - allBefore) - int64(videoAfter-videoBefore); audio < 10 {
		t.Errorf("hidden tile got %d audio packets in a second; audio must keep flowing", audio)
	}
	// A large tile gets the high layer without a focus.
	proctor.Send(map[string]any{"v": 1, "type": "view", "tiles": []map[string]any{{"identity": "alice", "height": 180}, {"identity": "bob", "height": 400}}})
	testclient.Eventually(t, 5*time.Second, "bob's large tile on the high layer", func() bool {
		return proctor.VideoFrom(bob.Me.SID).LastTag == 'h'
	})

	// Students may not steer layers.
	alice.Send(map[string]any{"v": 1, "type": "focus", "identity": "bob", "id": "f"})
	if m, ok := alice.NextEvent(TypeError, 5*time.Second); !ok || m.Code != CodeForbidden {
		t.Errorf("student focus got %+v", m)
	}
}

func join(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// TestLayerPerSubscriber: two proctors watch one simulcast student; the
// one who focuses her gets the high layer, the other keeps the low one
// (each subscriber chooses its own layer); the high layer stays on at
// the source while any proctor needs it, and is paused when none does.
func TestLayerPerSubscriber(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	focuser := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	gridder := srv.join(t, "exam-1", "proctor-2", room.RoleProctor)
	alice := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, Simulcast: true})
	layers := func(want string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case m := <-alice.Events:
				if m.Type == TypeLayers && join(m.Active) == want {
					return
				}
			case <-deadline:
				t.Fatalf("alice was not told layers %s", want)
			}
		}
	}
	on := func(p *testclient.Client, tag byte) func() bool {
		return func() bool {
			v := p.VideoFrom(alice.Me.SID)
			return v.LastTag == tag && v.Tags[tag] > 20
		}
	}
	layers("q")
	testclient.Eventually(t, 10*time.Second, "both proctors on the low layer", func() bool { return on(focuser, 'q')() && on(gridder, 'q')() })

	focuser.Send(map[string]any{"v": 1, "type": "focus", "identity": "alice"})
	layers("q,h")
	testclient.Eventually(t, 5*time.Second, "proctor-1 on the high layer", on(focuser, 'h'))
	// Proctor-2 never asked: it stays on the low layer, high packets never
	// reach it while proctor-1 gets 30 of them.
	before := gridder.VideoFrom(alice.Me.SID)
	highAt := focuser.VideoFrom(alice.Me.SID).Tags['h']
	testclient.Eventually(t, 5*time.Second, "30 high-layer packets at proctor-1", func() bool { return focuser.VideoFrom(alice.Me.SID).Tags['h'] >= highAt+30 })
	after := gridder.VideoFrom(alice.Me.SID)
	if after.Tags['h'] != 0 || after.LastTag != 'q' || after.Tags['q'] <= before.Tags['q'] {
		t.Fatalf("proctor-2 (grid) got %d high-layer packets, last layer %c; want only the low layer, flowing", after.Tags['h'], after.LastTag)
	}

	// Proctor-2 focuses her too; proctor-1 returns to the grid: the high
	// layer stays on (proctor-2 needs it) and each gets what it chose.
	gridder.Send(map[string]any{"v": 1, "type": "focus", "identity": "alice"})
	testclient.Eventually(t, 5*time.Second, "proctor-2 on the high layer", on(gridder, 'h'))
	focuser.Send(map[string]any{"v": 1, "type": "focus", "identity": ""})
	testclient.Eventually(t, 5*time.Second, "proctor-1 back on the low layer", on(focuser, 'q'))
	lowAt := focuser.VideoFrom(alice.Me.SID).Tags['q']
	testclient.Eventually(t, 5*time.Second, "15 more low-layer packets at proctor-1", func() bool { return focuser.VideoFrom(alice.Me.SID).Tags['q'] >= lowAt+15 })
	if v := gridder.VideoFrom(alice.Me.SID); v.LastTag != 'h' {
		t.Fatalf("proctor-2 lost the high layer when proctor-1 left it (last layer %c)", v.LastTag)
	}
	// Nobody needs the high layer any more: it is paused at the source.
	gridder.Send(map[string]any{"v": 1, "type": "focus", "identity": ""})
	layers("q")
	for _, p := range []*testclient.Client{focuser, gridder} {
		if v := p.VideoFrom(alice.Me.SID); v.SeqGaps != 0 || v.TSBackward != 0 || v.PicGaps != 0 {
			t.Errorf("%s's stream of alice was not continuous: %d seq gaps, %d timestamps back, %d picture ID gaps",
				p.Me.Identity, v.SeqGaps, v.TSBackward, v.PicGaps)
		}
	}
}

// TestH264Forwarded: a student publishing H.264 (one layer) reaches the
// proctor as H.264, forwarded without transcoding, and a late proctor
// gets its keyframe (the server asks the student with a PLI).
func TestH264Forwarded(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	first := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, srv.url, testclient.Options{Secret: testSecret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, H264: true})
	testclient.Eventually(t, 10*time.Second, "alice's H.264 at the proctor", func() bool { return first.VideoFrom(alice.Me.SID).Packets > 30 })
	if got := first.VideoCodec(alice.Me.SID); !strings.EqualFold(got, "video/H264") {
		t.Fatalf("the proctor receives alice's camera as %q, want video/H264", got)
	}
	plis := alice.PLIs.Load()
	late := srv.join(t, "exam-1", "proctor-2", room.RoleProctor)
	testclient.Eventually(t, 10*time.Second, "alice's H.264 at the late proctor", func() bool { return late.VideoFrom(alice.Me.SID).Packets > 30 })
	if alice.PLIs.Load() == plis {
		t.Error("no keyframe request reached alice for the late proctor")
	}
}

// aliceFlows waits until n more of alice's packets have reached proctor:
// a test's clock that runs on media, not on the wall.
func aliceFlows(t *testing.T, proctor, alice *testclient.Client, n int64) {
	t.Helper()
	at := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 10*time.Second, "alice's media at the proctor", func() bool { return proctor.PacketsFrom(alice.Me.SID) >= at+n })
}
