package loadtest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestLeanFullAgent runs the lean client against a full ICE agent, as
// the node before issue 16 is: a pion PeerConnection that trickles its
// candidates over signaling instead of listing them in its description
// and is the ICE-controlling side when it offers. A student offers and
// is answered (the lean side controlling, the DTLS server to pion's
// setup:active) and its camera and microphone reach pion; a proctor is
// offered to (the lean side controlled, the DTLS client) and what pion
// sends reaches it. Signaling is a WebSocket of the test's own.
func TestLeanFullAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var nacks atomic.Int64
	kit, err := newPeerKit(log, &nacks)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan *websocket.Conn, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ws, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		conns <- ws // the test's from here on; hijacked, it outlives the handler
	}))
	defer srv.Close()

	r := &run{cfg: Config{Client: ClientLean}, log: log, epoch: time.Now(), layers: cameraLayers(true),
		connCtx: context.Background(), bySID: map[string]*student{}, serverErrors: map[string]int{}}
	k, err := newLeanKit(r)
	if err != nil {
		t.Fatal(err)
	}
	r.lean = k
	st := r.newParticipant(0, 0, "s0", roleStudent)
	st.student = newStudent(st, r.layers)
	pr := r.newParticipant(0, 0, "p0", roleProctor)
	pr.proctor = newProctor(pr, r.layers)
	k.newPeer(st)
	k.newPeer(pr)
	k.start()
	defer func() {
		k.stopSending()
		k.close()
	}()

	// Each participant's session: dial, begin (a student offers), then
	// apply every frame, as participant.session does after joining.
	var sessions sync.WaitGroup
	defer sessions.Wait()
	var nodeWS []*websocket.Conn
	for _, p := range []*participant{st, pr} {
		sig, err := dialSignal(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"))
		if err != nil {
			t.Fatal(err)
		}
		p.sig = sig
		nodeWS = append(nodeWS, <-conns)
		defer nodeWS[len(nodeWS)-1].CloseNow()
		sessions.Add(1)
		go func() {
			defer sessions.Done()
			if err := p.lean.begin(ctx); err != nil {
				t.Errorf("%s: begin: %v", p.identity, err)
				return
			}
			for {
				m, err := p.sig.recv(ctx)
				if err != nil {
					return
				}
				p.lean.handle(ctx, m)
			}
		}()
		defer p.shutdown() // closes the socket, which ends the session
	}
	studentWS, proctorWS := nodeWS[0], nodeWS[1]

	// The student's node: answer its offer, take its camera and
	// microphone.
	spc := fullAgent(ctx, t, kit, studentWS)
	got := map[webrtc.RTPCodecType]chan struct{}{webrtc.RTPCodecTypeVideo: make(chan struct{}), webrtc.RTPCodecTypeAudio: make(chan struct{})}
	spc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		done := got[tr.Kind()]
		for n := 1; ; n++ {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if n == 20 {
				close(done)
			}
		}
	})
	offer := nodeRead(ctx, t, studentWS, typeOffer)
	if err := spc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		t.Fatal(err)
	}
	answer, err := spc.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := spc.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	// What is sent is CreateAnswer's, before any candidate was
	// gathered: they all go by trickle.
	if strings.Contains(answer.SDP, "a=candidate") || !strings.Contains(answer.SDP, "a=setup:active") {
		t.Fatalf("pion's answer is not what this test is about:\n%s", answer.SDP)
	}
	nodeSend(ctx, t, studentWS, outMsg{Type: typeAnswer, SDP: answer.SDP})

	// The proctor's node: offer a microphone track and send on it once
	// connected.
	ppc := fullAgent(ctx, t, kit, proctorWS)
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2},
		"microphone", "PA_student")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ppc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{})
	var once sync.Once
	ppc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	poffer, err := ppc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ppc.SetLocalDescription(poffer); err != nil {
		t.Fatal(err)
	}
	nodeSend(ctx, t, proctorWS, outMsg{Type: typeOffer, SDP: poffer.SDP})
	panswer := nodeRead(ctx, t, proctorWS, typeAnswer)
	if err := ppc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: panswer.SDP}); err != nil {
		t.Fatal(err)
	}

	for kind, done := range got {
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("pion got no %s from the lean student (state %d, failure %q)", kind, st.lean.state.Load(), failureOf(st))
		}
	}
	select {
	case <-connected:
	case <-ctx.Done():
		t.Fatalf("pion did not connect to the lean proctor (state %d, failure %q)", pr.lean.state.Load(), failureOf(pr))
	}
	// Audio at its own pace until the lean proctor has counted 20.
	tick := time.NewTicker(audioInterval)
	defer tick.Stop()
	var payload [audioBytes]byte
	for seq := uint16(0); r.forwarded.Load() < 20; seq++ {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the lean proctor counted %d packets (state %d, failure %q, unknown SSRC %d, decrypt errors %d)",
				r.forwarded.Load(), pr.lean.state.Load(), failureOf(pr), k.unknownSSRC.Load(), k.decryptErrors.Load())
		}
		writeOpus(payload[:], stamp{seq: uint32(seq), sent: r.clock()})
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * uint32(audioTicks)}, Payload: payload[:]}
		if err := track.WriteRTP(pkt); err != nil {
			t.Fatal(err)
		}
	}
	if !st.lean.controlling || pr.lean.controlling || !st.lean.dtlsServer || pr.lean.dtlsServer {
		t.Errorf("roles: student controlling %v, DTLS server %v; proctor controlling %v, DTLS server %v",
			st.lean.controlling, st.lean.dtlsServer, pr.lean.controlling, pr.lean.dtlsServer)
	}
	for _, p := range []*participant{st, pr} {
		if f := failureOf(p); f != "" {
			t.Errorf("%s failed: %s", p.identity, f)
		}
	}
}

// failureOf is why p failed, "" if it did not.
func failureOf(p *participant) string {
	if f := p.failure.Load(); f != nil {
		return *f
	}
	return ""
}

// fullAgent is a pion PeerConnection that trickles its candidates to
// the lean participant at the other end of ws.
func fullAgent(ctx context.Context, t *testing.T, kit *peerKit, ws *websocket.Conn) *webrtc.PeerConnection {
	t.Helper()
	pc, err := kit.newPeerConnection()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		b, _ := json.Marshal(outMsg{V: protocolVersion, Type: typeCandidate, Candidate: &init})
		_ = ws.Write(ctx, websocket.MessageText, b) // fails only once the test is over
	})
	return pc
}

// nodeSend writes one server frame to a lean participant.
func nodeSend(ctx context.Context, t *testing.T, ws *websocket.Conn, m outMsg) {
	t.Helper()
	m.V = protocolVersion
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// nodeRead reads a lean participant's next frame, which must be of type
// want.
func nodeRead(ctx context.Context, t *testing.T, ws *websocket.Conn, want string) outMsg {
	t.Helper()
	_, b, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m outMsg
	if err := json.Unmarshal(b, &m); err != nil || m.Type != want {
		t.Fatalf("got %s (%v), want a %s", b, err, want)
	}
	return m
}
