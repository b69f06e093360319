package signaling

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/pion/webrtc/v4"
)

// TestStudentCannotReceive: a student whose offer asks to receive
// (recvonly m-lines, and a sendrecv one beside what it publishes) gets a
// working media connection and no media at all, while another student
// publishes and a proctor watches both.
func TestStudentCannotReceive(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	bob := srv.join(t, "exam-1", "bob", room.RoleStudent)

	c := testclient.Dial(t, srv.url)
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", "mallory", room.RoleStudent)})
	if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != TypeJoined {
		t.Fatalf("join: %+v %v", m, err)
	}
	pc, err := testclient.NewPionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var received atomic.Int64
	pc.OnTrack(func(*webrtc.TrackRemote, *webrtc.RTPReceiver) { received.Add(1) })
	// From pion's and the reader's goroutines: a failed write is the test
	// ending, not a failure.
	send := func(v any) {
		b, _ := json.Marshal(v)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Write(ctx, websocket.MessageText, b)
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			send(map[string]any{"v": 1, "type": "candidate", "candidate": cand.ToJSON()})
		}
	})
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	// A camera sent on a sendrecv m-line: it publishes, and asks to receive.
	cam, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "mallory")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromTrack(cam, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendrecv}); err != nil {
		t.Fatal(err)
	}
	offer, _ := pc.CreateOffer(nil)
	pc.SetLocalDescription(offer)
	testclient.Send(t, c, map[string]any{"v": 1, "type": "offer", "sdp": offer.SDP})

	// Apply what the server signals: its answer, its candidates, and any
	// offer of its own (renegotiation), as a real client would.
	answers := make(chan string, 4)
	go func() {
		for {
			m, err := testclient.Recv(c, 30*time.Second)
			if err != nil {
				return
			}
			switch m.Type {
			case TypeAnswer:
				answers <- m.SDP
			case TypeCandidate:
				if m.Candidate != nil {
					_ = pc.AddICECandidate(*m.Candidate)
				}
			case TypeOffer:
				if pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}) == nil {
					ans, _ := pc.CreateAnswer(nil)
					_ = pc.SetLocalDescription(ans)
					send(map[string]any{"v": 1, "type": "answer", "sdp": ans.SDP})
				}
			}
		}
	}()
	var answer string
	select {
	case answer = <-answers:
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	// pion answers a recvonly m-line "sendonly" even with nothing to send;
	// what matters is that no stream is declared and none arrives.
	if strings.Contains(answer, "a=ssrc:") || strings.Contains(answer, "a=msid:") {
		t.Errorf("the answer to a student declares media for it:\n%s", answer)
	}
	testclient.Eventually(t, 10*time.Second, "mallory's media connection up", func() bool {
		return pc.ConnectionState() == webrtc.PeerConnectionStateConnected
	})
	// Bob publishes the whole time; mallory's connection carries nothing
	// to her.
	before := proctor.PacketsFrom(bob.Me.SID)
	testclient.Eventually(t, 10*time.Second, "60 of bob's packets at the proctor meanwhile", func() bool { return proctor.PacketsFrom(bob.Me.SID) >= before+60 })
	if n := received.Load(); n != 0 {
		t.Fatalf("a student asking to receive got %d tracks", n)
	}
	for _, tr := range pc.GetTransceivers() {
		if r := tr.Receiver(); r != nil && r.Track() != nil && r.Track().SSRC() != 0 {
			t.Errorf("mallory's %s receiver has a stream (SSRC %d)", tr.Kind(), r.Track().SSRC())
		}
	}
}

// TestNoSecretsInLogs: at debug level, a session with bad and good tokens
// logs neither the API secret nor any token.
func TestNoSecretsInLogs(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
	srv := newTestServer(t, room.Config{}, func(c *Config) { c.Logger = logger })
	good := mint(t, "exam-1", "alice", room.RoleStudent)
	c := testclient.Dial(t, srv.url)
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": good})
	testclient.Recv(c, 5*time.Second)
	bad := good[:len(good)-4] + "AAAA"
	c2 := testclient.Dial(t, srv.url)
	testclient.Send(t, c2, map[string]any{"v": 1, "type": "join", "token": bad})
	testclient.Recv(c2, 5*time.Second)
	c.CloseNow()
	c2.CloseNow()
	testclient.Eventually(t, 5*time.Second, "both sessions ended (and logged it)", func() bool { return srv.sig.Sessions() == 0 })
	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	if !strings.Contains(logs, "joined") {
		t.Fatal("nothing was logged; the test checks nothing")
	}
	for name, secret := range map[string]string{"API secret": testSecret, "token": good, "bad token": bad, "token signature": good[strings.LastIndex(good, ".")+1:]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain the %s", name)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestProctorSendsOnlyTalkback: a proctor's offer may send one audio
// track (its talk-back microphone) and nothing else; a student may not
// label a track talkback.
func TestProctorSendsOnlyTalkback(t *testing.T) {
	srv := newTestServer(t, room.Config{})
	offerFrom := func(identity string, role room.Role, kinds []webrtc.RTPCodecType, tracks []map[string]string) testclient.Msg {
		t.Helper()
		c := testclient.Dial(t, srv.url)
		testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", identity, role)})
		if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != TypeJoined {
			t.Fatalf("join: %+v %v", m, err)
		}
		pc, err := testclient.NewPionAPI(t).NewPeerConnection(webrtc.Configuration{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		for _, k := range kinds {
			if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
				t.Fatal(err)
			}
		}
		offer, _ := pc.CreateOffer(nil)
		testclient.Send(t, c, map[string]any{"v": 1, "type": "offer", "id": "o1", "sdp": offer.SDP, "tracks": tracks})
		for {
			m, err := testclient.Recv(c, 5*time.Second)
			if err != nil {
				t.Fatalf("%s: no reply to the offer: %v", identity, err)
			}
			if m.Type == TypeAnswer || m.Type == TypeError {
				return m
			}
		}
	}
	audio, video := webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo
	for _, tc := range []struct {
		name     string
		identity string
		role     room.Role
		kinds    []webrtc.RTPCodecType
		tracks   []map[string]string
		want     string
	}{
		{"proctor microphone", "proctor-1", room.RoleProctor, []webrtc.RTPCodecType{audio}, nil, TypeAnswer},
		{"proctor camera", "proctor-2", room.RoleProctor, []webrtc.RTPCodecType{video}, nil, CodeForbidden},
		{"proctor two microphones", "proctor-3", room.RoleProctor, []webrtc.RTPCodecType{audio, audio}, nil, CodeForbidden},
		{"student labels talkback", "alice", room.RoleStudent, []webrtc.RTPCodecType{audio},
			[]map[string]string{{"mid": "0", "source": "talkback"}}, CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := offerFrom(tc.identity, tc.role, tc.kinds, tc.tracks)
			got := m.Type
			if m.Type == TypeError {
				got = m.Code
			}
			if got != tc.want {
				t.Errorf("offer answered %s (%s), want %s", got, m.Message, tc.want)
			}
		})
	}
}
