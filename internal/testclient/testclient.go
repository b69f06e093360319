// Package testclient is a pion participant that speaks Invigil's signaling
// protocol (docs/protocol.md), for tests that need real peers on loopback:
// students publish VP8 and Opus, proctors receive and count packets.
// It is an independent client of the wire protocol and imports no
// Invigil package but room, for the Role type.
package testclient

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/invigil/invigil/room"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Mint signs a one-minute join token, as the exam platform would.
func Mint(t testing.TB, secret, roomName, identity string, role room.Role) string {
	t.Helper()
	return MintWith(t, secret, roomName, identity, role, nil)
}

// MintWith is Mint with extra claims (e.g. "record": true).
func MintWith(t testing.TB, secret, roomName, identity string, role room.Role, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"sub": identity, "room": roomName, "role": string(role), "name": identity,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
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
	Active       []string                 `json:"active"`
	Event        room.Event               `json:"event"`
	ICEServers   []ICEServer              `json:"ice_servers"`
	Text         string                   `json:"text"`       // message, ended
	MessageID    int64                    `json:"message_id"` // message
	From         string                   `json:"from"`       // message, ended
	URL          string                   `json:"url"`        // error redirect
	Talking      bool                     `json:"talking"`    // talkback
	StreamID     string                   `json:"stream_id"`  // talkback
	QR           string                   `json:"qr"`         // device_link
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

	PLIs atomic.Int64 // PLIs/FIRs the student received
	// TalkbackSent counts the talk-back packets a proctor has sent
	// (PublishTalkback).
	TalkbackSent atomic.Int64
	closing      atomic.Bool // close has begun: negotiation errors are expected
	opts         Options
	ready        chan struct{} // closed once pc is set
	ICEServers   []ICEServer   // what joined handed this client
	forceKey     atomic.Bool   // a PLI came: the next frame is a keyframe
	// StopVideo, while true, sends no video (a camera that froze); audio
	// goes on.
	StopVideo atomic.Bool
	// Starve, while true, sends a tiny frame three times a second instead
	// of the video: packets flow, the bitrate collapses (~1 kb/s).
	Starve      atomic.Bool
	conn        *lossyConn // the client's UDP path when lossy or cuttable
	mu          sync.Mutex // guards received, trackIDs, video, active
	received    map[string]int64
	video       map[string]*Video // by publisher sid
	active      map[string]bool   // layers the server wants; nil: all
	videoSSRCs  []uint32          // of the video tracks received
	trackIDs    map[string]string // track id → stream id
	videoCodecs map[string]string // stream id → the video codec received
	sendStop    chan struct{}
	wg          sync.WaitGroup

	// negMu serialises negotiation on pc (the reader applies the
	// server's offers and answers, a test's goroutine makes offers) and
	// guards sent, sentExtra and mids: a renegotiation offer of this
	// client sent and not yet applied (see offerLocked), the extra fields
	// it went with, and how many mids the client has named.
	negMu     sync.Mutex
	sent      *webrtc.SessionDescription
	sentExtra map[string]any
	mids      int
	// syncs are the Sync calls waiting for their pong, by ref; syncN
	// numbers them. Both guarded by holdMu.
	syncs map[string]chan struct{}
	syncN int
	// holdMu guards holding and held: the server's offers a test keeps
	// unanswered (HoldOffers), and syncs.
	holdMu  sync.Mutex
	holding bool
	held    []string
}

func NewPionAPI(t testing.TB) *webrtc.API {
	t.Helper()
	return newPionAPI(t, nil)
}

// newPionAPI is NewPionAPI whose ICE runs over conn when it is not nil
// (a lossy or cuttable path).
func newPionAPI(t testing.TB, conn *lossyConn) *webrtc.API {
	t.Helper()
	var se webrtc.SettingEngine
	if conn != nil {
		mux := webrtc.NewICEUDPMux(nil, conn)
		t.Cleanup(func() { mux.Close() })
		se.SetICEUDPMux(mux)
	}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	// The defaults bring the simulcast header extensions (mid, rid) a
	// layered publisher needs, and NACK, as a browser has them. A small
	// resend buffer (64 packets, 2 s of video here) keeps the client's
	// memory flat after its first seconds, so tests can measure the
	// server's.
	registry := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptorsWithOptions(m, registry,
		webrtc.WithNackResponderOptions(nack.ResponderSize(64))); err != nil {
		t.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(registry))
}

// setupPC makes the client's PeerConnection and lets the reader apply
// negotiation messages to it.
func (c *Client) setupPC(t testing.TB, config webrtc.Configuration) {
	if c.opts.DropInbound > 0 || c.opts.Cuttable {
		udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		c.conn = &lossyConn{UDPConn: udp, drop: c.opts.DropInbound, rng: rand.New(rand.NewPCG(1, 2))}
	}
	pc, err := newPionAPI(t, c.conn).NewPeerConnection(config)
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
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			c.videoCodecs[tr.StreamID()] = tr.Codec().MimeType
		}
		c.mu.Unlock()
		isVideo := tr.Kind() == webrtc.RTPCodecTypeVideo
		if isVideo {
			c.mu.Lock()
			c.videoSSRCs = append(c.videoSSRCs, uint32(tr.SSRC()))
			c.mu.Unlock()
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				c.mu.Lock()
				c.received[tr.StreamID()]++
				if isVideo && pkt.Unmarshal(buf[:n]) == nil {
					v := c.video[tr.StreamID()]
					if v == nil {
						v = &Video{Tags: map[byte]int{}}
						c.video[tr.StreamID()] = v
					}
					v.note(&pkt.Header, pkt.Payload)
				}
				c.mu.Unlock()
			}
		}()
	})
	close(c.ready)
}

// Join connects a Client with a token signed with secret and waits for
// joined. Students start publishing.
func Join(t testing.TB, url, secret, roomName, identity string, role room.Role) *Client {
	t.Helper()
	return JoinWith(t, url, Options{Secret: secret, Room: roomName, Identity: identity, Role: role})
}

// Options say who joins (a token from Secret for Room, Identity and
// Role, or a Token the test signed itself) and how the client publishes.
type Options struct {
	// Secret signs a one-minute token for Room, Identity and Role
	// (MintWith), unless Token is set.
	Secret, Room string
	// Identity and Role are who joins; with Token, they must be its own.
	Identity string
	Role     room.Role
	// Token is a token the test signed itself (extra claims).
	Token string
	// Simulcast publishes two VP8 layers, q (low) and h (high).
	Simulcast bool
	// DropInbound is the share of incoming RTP packets the client's
	// socket drops, to test recovery by retransmission.
	DropInbound float64
	// RelayOnly uses only the TURN servers joined hands out (ICE
	// transport policy "relay"), as a client behind a UDP-blocking
	// firewall would end up doing.
	RelayOnly bool
	// H264 publishes the camera as constrained-baseline H.264 (one layer)
	// instead of VP8.
	H264 bool
	// UseICEServers gives the PeerConnection the STUN/TURN servers joined
	// hands out, with no policy: a browser's default. The server's own
	// candidates should still win.
	UseICEServers bool
	// Record puts "record": true in the token.
	Record bool
	// Cuttable lets CutUDP cut the client's network path for a while.
	Cuttable bool
}

// ICEServer is one entry of joined's ice_servers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username"`
	Credential string   `json:"credential"`
}

// JoinWith connects a Client as opts say and waits for joined. Students
// start publishing.
func JoinWith(t testing.TB, url string, opts Options) *Client {
	t.Helper()
	identity, role, token := opts.Identity, opts.Role, opts.Token
	if token == "" {
		var extra map[string]any
		if opts.Record {
			extra = map[string]any{"record": true}
		}
		token = MintWith(t, opts.Secret, opts.Room, identity, role, extra)
	}
	c := &Client{
		t: t, role: role,
		ws:          Dial(t, url),
		joined:      make(chan Msg, 1),
		Events:      make(chan Msg, 256),
		closed:      make(chan struct{}),
		received:    make(map[string]int64),
		video:       make(map[string]*Video),
		opts:        opts,
		trackIDs:    make(map[string]string),
		videoCodecs: make(map[string]string),
		sendStop:    make(chan struct{}),
		ready:       make(chan struct{}),
	}
	c.wg.Add(1)
	go c.readLoop()
	c.Send(map[string]any{"v": 1, "type": "join", "token": token, "id": "j1"})
	var joined Msg
	select {
	case joined = <-c.joined:
		c.Me = joined.Participant
		c.View = joined.Participants
		c.ICEServers = joined.ICEServers
	case m := <-c.Events:
		t.Fatalf("%s: join answered %+v", identity, m)
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no joined reply", identity)
	}
	// The PeerConnection is made once joined says which ICE servers to
	// use; negotiation messages wait for it (c.ready).
	config := webrtc.Configuration{}
	if opts.RelayOnly || opts.UseICEServers {
		for _, s := range joined.ICEServers {
			config.ICEServers = append(config.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
	}
	if opts.RelayOnly {
		config.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	c.setupPC(t, config)
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
		case "offer", "answer", "candidate":
			select {
			case <-c.ready:
			case <-c.sendStop:
				return
			}
		}
		switch m.Type {
		case "joined":
			c.joined <- m
		case "offer":
			if c.holdOffer(m.SDP) {
				continue
			}
			c.answer(m.SDP)
		case "answer":
			c.applyAnswer(m.SDP)
		case "layers":
			c.mu.Lock()
			c.active = map[string]bool{}
			for _, rid := range m.Active {
				c.active[rid] = true
			}
			c.mu.Unlock()
			select {
			case c.Events <- m:
			default:
			}
		case "candidate":
			if m.Candidate != nil {
				_ = c.pc.AddICECandidate(*m.Candidate)
			}
		case "pong":
			if c.synced(m.Ref) {
				continue
			}
			c.event(m)
		case "error":
			if m.Code == "glare" {
				// Our offer crossed the server's, which came first on
				// the socket and has been answered (answer), with our
				// offer made again: nothing is left to do.
				continue
			}
			c.event(m)
		default:
			c.event(m)
		}
	}
}

// event queues an announcement, error or leave for the test.
func (c *Client) event(m Msg) {
	select {
	case c.Events <- m:
	default:
		c.t.Errorf("event queue full, dropped %s", m.Type)
	}
}

// answer answers a server offer. The client is the polite peer of
// perfect negotiation (docs/protocol.md, "Flow"). pion cannot roll an
// offer back (v4.2 refuses have-local-offer → rollback), so the client
// applies a renegotiation offer of its own only once the server answers
// it (offerLocked): a server offer that comes first crossed it, and the
// server has refused it (glare) or will. The client answers the
// server's and offers again.
func (c *Client) answer(sdp string) {
	if c.closing.Load() {
		return
	}
	c.negMu.Lock()
	defer c.negMu.Unlock()
	crossed := c.sent != nil
	c.sent = nil
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
	if crossed {
		c.offerLocked(c.sentExtra)
	}
}

// applyAnswer applies the server's answer to this client's offer, and
// first the offer itself when it was a renegotiation (offerLocked).
func (c *Client) applyAnswer(sdp string) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	if c.sent != nil {
		if err := c.pc.SetLocalDescription(*c.sent); err != nil {
			c.fail("set offer", err)
			return
		}
		c.sent = nil
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		c.fail("apply answer", err)
	}
}

// Sync returns once the server has handled every message this client
// sent before it: the server reads a connection's messages in order, so
// the pong to a ping sent now comes after them (a view, a focus, a
// talkback has taken effect by then).
func (c *Client) Sync() {
	c.t.Helper()
	c.holdMu.Lock()
	c.syncN++
	ref := "sync-" + strconv.Itoa(c.syncN)
	done := make(chan struct{})
	if c.syncs == nil {
		c.syncs = map[string]chan struct{}{}
	}
	c.syncs[ref] = done
	c.holdMu.Unlock()
	c.Send(map[string]any{"v": 1, "type": "ping", "id": ref})
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no pong to %s within 5 s", ref)
	}
}

// synced tells the Sync waiting for ref, if any.
func (c *Client) synced(ref string) bool {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	done, ok := c.syncs[ref]
	if ok {
		delete(c.syncs, ref)
		close(done)
	}
	return ok
}

// HoldOffers keeps the server's offers unanswered until ReleaseOffers,
// so that a test can cross an offer of the client's with one of the
// server's (glare) at will.
func (c *Client) HoldOffers() {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	c.holding = true
}

// HeldOffers counts the server's offers held so far.
func (c *Client) HeldOffers() int {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	return len(c.held)
}

// ReleaseOffers answers the held offers, in order, and stops holding.
func (c *Client) ReleaseOffers() {
	c.holdMu.Lock()
	held := c.held
	c.holding, c.held = false, nil
	c.holdMu.Unlock()
	for _, sdp := range held {
		c.answer(sdp)
	}
}

// holdOffer keeps sdp if the client holds offers.
func (c *Client) holdOffer(sdp string) bool {
	c.holdMu.Lock()
	defer c.holdMu.Unlock()
	if c.holding {
		c.held = append(c.held, sdp)
	}
	return c.holding
}

// close leaves politely and waits for the Client's goroutines.
func (c *Client) Close() { c.close(true) }

// Drop loses the connection without a goodbye, as a student whose Wi-Fi
// drops does: no leave message, the socket torn down.
func (c *Client) Drop() { c.close(false) }

func (c *Client) close(polite bool) {
	select {
	case <-c.sendStop:
		return
	default:
	}
	if polite {
		c.Send(map[string]any{"v": 1, "type": "leave"})
	}
	c.closing.Store(true)
	close(c.sendStop)
	if polite {
		c.ws.Close(websocket.StatusNormalClosure, "")
	} else {
		c.ws.CloseNow()
	}
	if c.pc != nil {
		c.pc.Close()
	}
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

// FreeUDPTCPPort finds a loopback port free for both UDP and TCP, for a
// server that listens on one port number with both (STUN and TURN).
func FreeUDPTCPPort(t testing.TB) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no port free for both UDP and TCP")
	return 0
}
