package signaling

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

const testSecret = "test-secret-0123456789abcdef0123456789"

// testServer is a whole signaling + room + sfu stack on loopback.
type testServer struct {
	url    string // ws://127.0.0.1:port/v1/rtc
	rooms  *room.Rooms
	engine *sfu.Engine
	sig    *Server
}

func newTestServer(t *testing.T, rc room.Config) *testServer {
	t.Helper()
	log := testLogger(t)
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := sfu.New(sfu.Config{UDP: udp, TCP: tcp, IncludeLoopback: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rc.Logger = log
	rooms, err := room.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := NewServer(Config{Rooms: rooms, Engine: engine, Secret: []byte(testSecret), Version: "test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/rtc", sig)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		rooms.Close(room.ReasonShutdown)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := sig.Shutdown(ctx); err != nil {
			t.Errorf("signaling shutdown: %v", err)
		}
		hs.Close()
		engine.Close()
	})
	return &testServer{url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/rtc", rooms: rooms, engine: engine, sig: sig}
}

// testLogger logs through t, at debug level when -v.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(strings.TrimSpace(string(b))); return len(b), nil }

func mint(t *testing.T, roomName, identity string, role room.Role) string {
	t.Helper()
	tok, err := MintToken([]byte(testSecret), TokenSpec{Room: roomName, Identity: identity, Role: role, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// serverMsg is any server frame, decoded loosely for assertions.
type serverMsg struct {
	Type         string                   `json:"type"`
	Ref          string                   `json:"ref"`
	Code         string                   `json:"code"`
	Message      string                   `json:"message"`
	Reason       string                   `json:"reason"`
	SDP          string                   `json:"sdp"`
	Candidate    *webrtc.ICECandidateInit `json:"candidate"`
	Participant  room.ParticipantInfo     `json:"participant"`
	Participants []room.ParticipantInfo   `json:"participants"`
	Identity     string                   `json:"identity"`
	Track        room.TrackInfo           `json:"track"`
}

// wsDial opens a raw signaling connection.
func wsDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// wsRecv reads the next frame, or returns the read error.
func wsRecv(c *websocket.Conn, timeout time.Duration) (serverMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return serverMsg{}, err
	}
	var m serverMsg
	err = json.Unmarshal(b, &m)
	return m, err
}

// client is a pion participant speaking the protocol: students publish a
// VP8 track (and Opus), proctors receive.
type client struct {
	t    *testing.T
	ws   *websocket.Conn
	pc   *webrtc.PeerConnection
	role room.Role
	me   room.ParticipantInfo   // from joined
	view []room.ParticipantInfo // who joined said was there

	joined chan serverMsg // the joined reply
	events chan serverMsg // announcements, errors, leave
	closed chan struct{}  // the socket closed

	plis     atomic.Int64 // PLIs/FIRs the student received
	closing  atomic.Bool  // close has begun: negotiation errors are expected
	mu       sync.Mutex   // guards received and trackIDs
	received map[string]int64
	trackIDs map[string]string // track id → stream id
	sendStop chan struct{}
	wg       sync.WaitGroup
}

func newPionAPI(t *testing.T) *webrtc.API {
	t.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m))
}

// join connects a client and waits for joined. Students start publishing.
func join(t *testing.T, srv *testServer, roomName, identity string, role room.Role) *client {
	t.Helper()
	c := &client{
		t: t, role: role,
		ws:       wsDial(t, srv.url),
		joined:   make(chan serverMsg, 1),
		events:   make(chan serverMsg, 256),
		closed:   make(chan struct{}),
		received: make(map[string]int64),
		trackIDs: make(map[string]string),
		sendStop: make(chan struct{}),
	}
	pc, err := newPionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c.pc = pc
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			c.send(map[string]any{"v": 1, "type": "candidate", "candidate": cand.ToJSON()})
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		c.mu.Lock()
		c.trackIDs[tr.ID()] = tr.StreamID()
		c.mu.Unlock()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := tr.Read(buf); err != nil {
					return
				}
				c.mu.Lock()
				c.received[tr.StreamID()]++
				c.mu.Unlock()
			}
		}()
	})
	c.wg.Add(1)
	go c.readLoop()
	c.send(map[string]any{"v": 1, "type": "join", "token": mint(t, roomName, identity, role), "id": "j1"})
	select {
	case m := <-c.joined:
		c.me = m.Participant
		c.view = m.Participants
	case m := <-c.events:
		t.Fatalf("%s: join answered %+v", identity, m)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no joined reply", identity)
	}
	if role == room.RoleStudent {
		c.publish()
	}
	t.Cleanup(c.close)
	return c
}

func (c *client) send(v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.ws.Write(ctx, websocket.MessageText, b)
}

func (c *client) readLoop() {
	defer c.wg.Done()
	defer close(c.closed)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		var m serverMsg
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Errorf("server sent invalid JSON: %s", b)
			return
		}
		switch m.Type {
		case TypeJoined:
			c.joined <- m
		case TypeOffer:
			c.answer(m.SDP)
		case TypeAnswer:
			if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				c.t.Errorf("apply answer: %v", err)
			}
		case TypeCandidate:
			if m.Candidate != nil {
				_ = c.pc.AddICECandidate(*m.Candidate)
			}
		default:
			select {
			case c.events <- m:
			default:
				c.t.Errorf("event queue full, dropped %s", m.Type)
			}
		}
	}
}

func (c *client) answer(sdp string) {
	if c.closing.Load() {
		return
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		c.fail("apply offer", err)
		return
	}
	ans, err := c.pc.CreateAnswer(nil)
	if err != nil {
		c.fail("create answer", err)
		return
	}
	if err := c.pc.SetLocalDescription(ans); err != nil {
		c.fail("set answer", err)
		return
	}
	c.send(map[string]any{"v": 1, "type": "answer", "sdp": ans.SDP})
}

// publish adds a VP8 camera and an Opus microphone, offers, and sends
// VP8-shaped RTP at 30 packets/s until closed, answering PLI with a count.
func (c *client) publish() {
	video, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", "student")
	if err != nil {
		c.t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "student")
	if err != nil {
		c.t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		sender, err := c.pc.AddTrack(tr)
		if err != nil {
			c.t.Fatal(err)
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						c.plis.Add(1)
					}
				}
			}
		}()
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	c.send(map[string]any{"v": 1, "type": "offer", "sdp": offer.SDP})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		payload := make([]byte, 600)
		for i := uint32(0); ; i++ {
			select {
			case <-c.sendStop:
				return
			case <-tick.C:
			}
			// VP8 payload descriptor (RFC 7741 §4.2): S=1, PID 0; then a
			// frame header whose P bit says keyframe every 30th frame.
			payload[0] = 0x10
			payload[1] = 0x01
			if i%30 == 0 {
				payload[1] = 0x00
			}
			_ = video.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: uint16(i), Timestamp: i * 3000}, Payload: payload})
			_ = audio.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: i * 960}, Payload: payload[:80]})
		}
	}()
}

// packetsFrom returns how many RTP packets arrived from a publisher sid.
func (c *client) packetsFrom(sid string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received[sid]
}

func (c *client) totalReceived() (tracks int, packets int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.received {
		packets += n
	}
	return len(c.trackIDs), packets
}

// close leaves politely and waits for the client's goroutines.
func (c *client) close() {
	select {
	case <-c.sendStop:
		return
	default:
	}
	c.closing.Store(true)
	close(c.sendStop)
	c.ws.Close(websocket.StatusNormalClosure, "")
	c.pc.Close()
	c.wg.Wait()
}

// nextEvent waits for an event of the given type, skipping others.
func (c *client) nextEvent(typ string, timeout time.Duration) (serverMsg, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case m := <-c.events:
			if m.Type == typ {
				return m, true
			}
		case <-deadline:
			return serverMsg{}, false
		}
	}
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertClosed reads until the server closes the socket, skipping frames
// sent before the close, and returns the close status.
func assertClosed(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	for range 8 {
		if _, err := wsRecv(c, 5*time.Second); err != nil {
			st := websocket.CloseStatus(err)
			if st == -1 {
				t.Fatalf("connection ended without a close frame: %v", err)
			}
			return st
		}
	}
	t.Fatal("server kept the connection open")
	return 0
}

// fail reports a negotiation error unless the client is closing.
func (c *client) fail(what string, err error) {
	if !c.closing.Load() {
		c.t.Errorf("%s: %v", what, err)
	}
}
