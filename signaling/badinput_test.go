package signaling

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/pion/webrtc/v4"
)

// TestBadInputKeepsOthersServing throws malformed, unknown, oversized and
// garbage input at the server, and clients that vanish mid-handshake,
// while a proctor watches a student; the student's media never stops and
// each bad input gets its documented answer.
func TestBadInputKeepsOthersServing(t *testing.T) {
	refusals := &refusalCounter{}
	srv := newTestServer(t, room.Config{}, func(c *Config) { c.Observer = refusals })
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from alice", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 10 })

	// Each case: frames sent after an optional join, and the expected
	// error code of the reply to the last frame.
	cases := []struct {
		name   string
		joined bool
		frame  string
		code   string
		fatal  bool
	}{
		{"not JSON", false, `{"v":1,"type":`, CodeMalformed, false},
		{"JSON array", false, `[1,2,3]`, CodeMalformed, false},
		{"wrong field type", false, `{"v":1,"type":"join","token":42}`, CodeMalformed, false},
		{"no type", false, `{"v":1}`, CodeUnknownType, false},
		{"unknown type before join", false, `{"v":1,"type":"teleport","id":"x"}`, CodeUnknownType, false},
		{"offer before join", false, `{"v":1,"type":"offer","sdp":"v=0"}`, CodeJoinRequired, false},
		{"version 2", false, `{"v":2,"type":"join","token":"x"}`, CodeUnsupportedVersion, true},
		{"unknown type after join", true, `{"v":1,"type":"teleport","id":"x"}`, CodeUnknownType, false},
		{"second join", true, `{"v":1,"type":"join","token":"x"}`, CodeAlreadyJoined, false},
		{"SDP garbage", true, `{"v":1,"type":"offer","sdp":"this is not SDP"}`, CodeSDPInvalid, false},
		{"answer without offer", true, `{"v":1,"type":"answer","sdp":"v=0\r\n"}`, CodeSDPInvalid, false},
		{"bad candidate", true, `{"v":1,"type":"candidate","candidate":{"candidate":"candidate:garbage","sdpMid":"0"}}`, CodeCandidateInvalid, false},
		{"bad source", true, `{"v":1,"type":"offer","sdp":"v=0","tracks":[{"mid":"0","source":"keylogger"}]}`, CodeMalformed, false},
		{"oversized SDP", true, `{"v":1,"type":"offer","sdp":"` + strings.Repeat("a", MaxSDPBytes+1) + `"}`, CodeSDPTooLarge, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testclient.Dial(t, srv.url)
			if tc.joined {
				testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", "bob-"+strings.ReplaceAll(tc.name, " ", "-"), room.RoleStudent)})
				if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != TypeJoined {
					t.Fatalf("join: %+v %v", m, err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Write(ctx, websocket.MessageText, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			m, err := nextNonSignal(c)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if m.Type != TypeError || m.Code != tc.code {
				t.Fatalf("got %+v, want error %s", m, tc.code)
			}
			if tc.fatal {
				testclient.AssertClosed(t, c)
				return
			}
			// Still serving this connection: a join (before) or a ping
			// (after joining) is answered.
			next, want := map[string]any{"v": 1, "type": "ping", "ts": 7, "id": "p"}, TypePong
			if !tc.joined {
				next, want = map[string]any{"v": 1, "type": "join", "id": "p", "token": mint(t, "exam-1", "carol-"+strings.ReplaceAll(tc.name, " ", "-"), room.RoleStudent)}, TypeJoined
			}
			testclient.Send(t, c, next)
			if m, err := nextNonSignal(c); err != nil || m.Type != want || m.Ref != "p" {
				t.Fatalf("after the bad frame, %s got %+v %v", next["type"], m, err)
			}
		})
	}

	t.Run("oversized frame", func(t *testing.T) {
		c := testclient.Dial(t, srv.url)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Write(ctx, websocket.MessageText, []byte(`{"v":1,"type":"ping","pad":"`+strings.Repeat("x", MaxFrameBytes)+`"}`))
		if st := testclient.AssertClosed(t, c); st != websocket.StatusMessageTooBig {
			t.Errorf("closed with %d, want 1009", st)
		}
		testclient.Eventually(t, 2*time.Second, "the oversized frame counted", func() bool { return refusals.count(CodeTooLarge) == 1 })
	})

	t.Run("binary frame", func(t *testing.T) {
		c := testclient.Dial(t, srv.url)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2})
		if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Code != CodeMalformed {
			t.Fatalf("got %+v %v", m, err)
		}
	})

	t.Run("vanish mid-handshake", func(t *testing.T) {
		for i := range 5 {
			c := testclient.Dial(t, srv.url)
			testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", "ghost", room.RoleStudent)})
			if i%2 == 0 {
				// Gone before even reading joined.
				c.CloseNow()
				continue
			}
			if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != TypeJoined {
				t.Fatalf("join: %+v %v", m, err)
			}
			testclient.Send(t, c, map[string]any{"v": 1, "type": "offer", "sdp": pionOffer(t)})
			c.CloseNow()
		}
		testclient.Eventually(t, 5*time.Second, "ghost sessions gone", func() bool {
			s := srv.rooms.Stats()
			return s.Students == 1 && s.Proctors == 1
		})
	})

	// Through all of it, alice's media kept flowing.
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "alice's media still flowing", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+10 })
}

// holdingGate holds the first join of identity until release is closed,
// as a slow store lookup would; it admits all.
type holdingGate struct {
	identity string
	once     sync.Once
	held     chan struct{} // closed once the first join waits
	release  chan struct{}
}

func (g *holdingGate) Admit(_ context.Context, _, identity string, _ time.Time) error {
	if identity != g.identity {
		return nil
	}
	first := false
	g.once.Do(func() { first = true; close(g.held) })
	if first {
		<-g.release
	}
	return nil
}

// TestLateJoinOfGivenUpConnection: a student's join stalls, the client
// gives up on that connection and joins on a new one; when the stalled
// join finally runs it is refused (superseded) and the new session stays,
// untouched: the join that finishes last is not the one that wins.
func TestLateJoinOfGivenUpConnection(t *testing.T) {
	gate := &holdingGate{identity: "alice", held: make(chan struct{}), release: make(chan struct{})}
	srv := newTestServer(t, room.Config{}, func(c *Config) { c.Gate = gate })
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)

	old := testclient.Dial(t, srv.url)
	testclient.Send(t, old, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", "alice", room.RoleStudent)})
	select {
	case <-gate.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the first join never reached the gate")
	}
	alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
	if _, ok := proctor.NextEvent(TypeParticipantJoined, 5*time.Second); !ok {
		t.Fatal("the proctor was not told alice joined")
	}

	close(gate.release)
	m, err := testclient.Recv(old, 5*time.Second)
	if err != nil || m.Type != TypeError || m.Code != CodeSuperseded {
		t.Fatalf("the stalled join got %+v %v, want error %s", m, err, CodeSuperseded)
	}
	if st := testclient.AssertClosed(t, old); st == websocket.StatusNormalClosure {
		t.Errorf("the superseded connection closed with %d", st)
	}
	// The live session was never replaced: no leave to alice, none to the
	// proctor, and her media flows.
	alice.Sync()
	proctor.Sync()
	for _, c := range []*testclient.Client{alice, proctor} {
		for {
			select {
			case e := <-c.Events:
				if e.Type == TypeLeave || e.Type == TypeParticipantLeft {
					t.Errorf("%s after the stale join: %+v", e.Type, e)
				}
				continue
			default:
			}
			break
		}
	}
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "alice's media flowing", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+10 })
	if s := srv.rooms.Stats(); s.Students != 1 || s.Proctors != 1 {
		t.Errorf("stats %+v, want one student and one proctor", s)
	}
}

// TestJoinTimeout: a connection that never joins is closed with
// join_timeout.
func TestJoinTimeout(t *testing.T) {
	srv := newTestServer(t, room.Config{}, func(c *Config) { c.JoinTimeout = 500 * time.Millisecond })
	c := testclient.Dial(t, srv.url)
	m, err := testclient.Recv(c, 5*time.Second)
	if err != nil || m.Code != CodeJoinTimeout {
		t.Fatalf("got %+v %v, want join_timeout", m, err)
	}
	if st := testclient.AssertClosed(t, c); st != websocket.StatusPolicyViolation {
		t.Errorf("closed with %d, want 1008", st)
	}
}

// nextNonSignal skips the server's own negotiation frames (answers,
// candidates) and returns the next other frame.
func nextNonSignal(c *websocket.Conn) (testclient.Msg, error) {
	for {
		m, err := testclient.Recv(c, 5*time.Second)
		if err != nil || (m.Type != TypeAnswer && m.Type != TypeCandidate && m.Type != TypeOffer) {
			return m, err
		}
	}
}

// pionOffer returns a real sendonly VP8 offer.
func pionOffer(t *testing.T) string {
	t.Helper()
	pc, err := testclient.NewPionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// refusalCounter is an Observer that counts refusals by reason.
type refusalCounter struct {
	nopObserver
	mu sync.Mutex // guards by
	by map[string]int
}

func (r *refusalCounter) Refused(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = map[string]int{}
	}
	r.by[reason]++
}

func (r *refusalCounter) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.by[reason]
}
