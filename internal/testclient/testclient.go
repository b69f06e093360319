// Package testclient is a pion participant that speaks Invigil's signaling
// protocol (docs/protocol.md), for tests that need real peers on loopback:
// students publish VP8 and Opus, proctors receive and count packets.
// It is an independent client of the wire protocol and imports no
// Invigil package but room, for the Role type.
package testclient

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/invigil/invigil/room"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Mint signs a one-minute join token, as the exam platform would.
func Mint(t testing.TB, secret, roomName, identity string, role room.Role) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": identity, "room": roomName, "role": string(role), "name": identity,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Msg is any server frame, decoded loosely for assertions.
type Msg struct {
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

// Dial opens a raw signaling connection.
func Dial(t testing.TB, url string) *websocket.Conn {
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

func Send(t testing.TB, c *websocket.Conn, v any) {
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

// Recv reads the next frame, or returns the read error.
func Recv(c *websocket.Conn, timeout time.Duration) (Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return Msg{}, err
	}
	var m Msg
	err = json.Unmarshal(b, &m)
	return m, err
}

// Client is a pion participant speaking the protocol: students publish a
// VP8 track (and Opus), proctors receive.
type Client struct {
	t    testing.TB
	ws   *websocket.Conn
	pc   *webrtc.PeerConnection
	role room.Role
	Me   room.ParticipantInfo   // from joined
	View []room.ParticipantInfo // who joined said was there

	joined chan Msg      // the joined reply
	Events chan Msg      // announcements, errors, leave
	closed chan struct{} // the socket closed

	PLIs     atomic.Int64 // PLIs/FIRs the student received
	closing  atomic.Bool  // close has begun: negotiation errors are expected
	mu       sync.Mutex   // guards received and trackIDs
	received map[string]int64
	trackIDs map[string]string // track id → stream id
	sendStop chan struct{}
	wg       sync.WaitGroup
}

func NewPionAPI(t testing.TB) *webrtc.API {
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

// join connects a Client and waits for joined. Students start publishing.
func Join(t testing.TB, url, secret, roomName, identity string, role room.Role) *Client {
	t.Helper()
	c := &Client{
		t: t, role: role,
		ws:       Dial(t, url),
		joined:   make(chan Msg, 1),
		Events:   make(chan Msg, 256),
		closed:   make(chan struct{}),
		received: make(map[string]int64),
		trackIDs: make(map[string]string),
		sendStop: make(chan struct{}),
	}
	pc, err := NewPionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c.pc = pc
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			c.Send(map[string]any{"v": 1, "type": "candidate", "candidate": cand.ToJSON()})
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
	c.Send(map[string]any{"v": 1, "type": "join", "token": Mint(t, secret, roomName, identity, role), "id": "j1"})
	select {
	case m := <-c.joined:
		c.Me = m.Participant
		c.View = m.Participants
	case m := <-c.Events:
		t.Fatalf("%s: join answered %+v", identity, m)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no joined reply", identity)
	}
	if role == room.RoleStudent {
		c.publish()
	}
	t.Cleanup(c.Close)
	return c
}

func (c *Client) Send(v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.ws.Write(ctx, websocket.MessageText, b)
}

func (c *Client) readLoop() {
	defer c.wg.Done()
	defer close(c.closed)
	for {
		_, b, err := c.ws.Read(context.Background())
		if err != nil {
			return
		}
		var m Msg
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Errorf("server sent invalid JSON: %s", b)
			return
		}
		switch m.Type {
		case "joined":
			c.joined <- m
		case "offer":
			c.answer(m.SDP)
		case "answer":
			if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				c.t.Errorf("apply answer: %v", err)
			}
		case "candidate":
			if m.Candidate != nil {
				_ = c.pc.AddICECandidate(*m.Candidate)
			}
		default:
			select {
			case c.Events <- m:
			default:
				c.t.Errorf("event queue full, dropped %s", m.Type)
			}
		}
	}
}

func (c *Client) answer(sdp string) {
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
	c.Send(map[string]any{"v": 1, "type": "answer", "sdp": ans.SDP})
}

// publish adds a VP8 camera and an Opus microphone, offers, and sends
// VP8-shaped RTP at 30 packets/s until closed, answering PLI with a count.
func (c *Client) publish() {
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
						c.PLIs.Add(1)
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
	c.Send(map[string]any{"v": 1, "type": "offer", "sdp": offer.SDP})
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

// PacketsFrom returns how many RTP packets arrived from a publisher sid.
func (c *Client) PacketsFrom(sid string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received[sid]
}

func (c *Client) TotalReceived() (tracks int, packets int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.received {
		packets += n
	}
	return len(c.trackIDs), packets
}

// close leaves politely and waits for the Client's goroutines.
func (c *Client) Close() {
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

// NextEvent waits for an event of the given type, skipping others.
func (c *Client) NextEvent(typ string, timeout time.Duration) (Msg, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case m := <-c.Events:
			if m.Type == typ {
				return m, true
			}
		case <-deadline:
			return Msg{}, false
		}
	}
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AssertClosed reads until the server closes the socket, skipping frames
// sent before the close, and returns the close status.
func AssertClosed(t testing.TB, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	for range 8 {
		if _, err := Recv(c, 5*time.Second); err != nil {
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

// fail reports a negotiation error unless the Client is closing.
func (c *Client) fail(what string, err error) {
	if !c.closing.Load() {
		c.t.Errorf("%s: %v", what, err)
	}
}
