package sfu

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/stun/v4"
)

// testClient is a minimal WebRTC endpoint for tests of the packet path: a
// UDP socket on loopback, ICE checks as the controlling agent, a DTLS
// client handshake and pion/srtp. It drives a real Engine over real
// sockets; its DTLS and SRTP are pion's (through the node's own adapter
// and key export, which the signaling tests also run against pion's full
// WebRTC stack and the e2e tests against browsers).
type testClient struct {
	t      testing.TB
	e      *Engine
	conn   *net.UDPConn
	node   netip.AddrPort
	local  iceCreds
	cert   *certificate
	sig    *testSignal
	peer   *Peer
	keys   *srtpKeys
	remote iceCreds

	out  []byte // scratch for what the client sends
	in   []byte // scratch for what it reads
	hdr  rtp.Header
	rhdr rtp.Header
}

// testSignal captures a Peer's signalling.
type testSignal struct {
	mu      sync.Mutex
	offers  []string
	answers []string
	cands   int
	changed chan struct{}
}

func newTestSignal() *testSignal { return &testSignal{changed: make(chan struct{}, 64)} }

func (s *testSignal) note(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
}
func (s *testSignal) SendOffer(sdp string)  { s.note(func() { s.offers = append(s.offers, sdp) }) }
func (s *testSignal) SendAnswer(sdp string) { s.note(func() { s.answers = append(s.answers, sdp) }) }
func (s *testSignal) SendCandidate(Candidate) {
	s.note(func() { s.cands++ })
}

// last returns the latest offer or answer, waiting for one.
func (s *testSignal) last(tb testing.TB, offers bool, n int) string {
	tb.Helper()
	deadline := time.After(5 * time.Second)
	for {
		s.mu.Lock()
		list := s.answers
		if offers {
			list = s.offers
		}
		if len(list) >= n {
			v := list[n-1]
			s.mu.Unlock()
			return v
		}
		s.mu.Unlock()
		select {
		case <-s.changed:
		case <-deadline:
			tb.Fatalf("no description %d (offers %v) within 5 s", n, offers)
		}
	}
}

// newPathEngine is an Engine on a loopback UDP port for packet-path
// tests, optionally without its clock.
func newPathEngine(tb testing.TB, clock bool) *Engine {
	tb.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(Config{UDP: udp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), noClock: !clock})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func newTestClient(tb testing.TB, e *Engine, cfg PeerConfig) *testClient {
	tb.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = conn.SetReadBuffer(4 << 20)
	tb.Cleanup(func() { conn.Close() })
	cert, err := newCertificate()
	if err != nil {
		tb.Fatal(err)
	}
	c := &testClient{t: tb, e: e, conn: conn, local: newCreds(), cert: cert, sig: newTestSignal(),
		node: e.loops[0].conn.LocalAddr().(*net.UDPAddr).AddrPort(), out: make([]byte, maxPacket), in: make([]byte, maxPacket)}
	cfg.Signal = c.sig
	if cfg.ID == "" {
		cfg.ID = newID("PA_")
	}
	p, err := e.NewPeer(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close() })
	c.peer = p
	return c
}

// transportLines are the client's session-level transport attributes.
func (c *testClient) transportLines(setup string) string {
	return fmt.Sprintf("a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\na=setup:%s\r\n",
		c.local.ufrag, c.local.pwd, c.cert.fingerprint, setup)
}

// publish offers one VP8 camera on ssrc (and audio on ssrc+1 when audio)
// and applies the node's answer.
func (c *testClient) publish(ssrc uint32, audio bool, answer ...int) {
	c.t.Helper()
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	mids := "0"
	if audio {
		mids = "0 1"
	}
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\n", mids)
	fmt.Fprintf(&b, "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\n%sa=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n", c.transportLines("actpass"))
	b.WriteString("a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n")
	fmt.Fprintf(&b, "a=ssrc-group:FID %d %d\r\na=ssrc:%d cname:test\r\na=ssrc:%d cname:test\r\n", ssrc, ssrc+100, ssrc, ssrc+100)
	if audio {
		fmt.Fprintf(&b, "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n%sa=mid:1\r\na=sendonly\r\na=rtcp-mux\r\n", c.transportLines("actpass"))
		fmt.Fprintf(&b, "a=rtpmap:111 opus/48000/2\r\na=ssrc:%d cname:test\r\n", ssrc+1)
	}
	if err := c.peer.HandleOffer(b.String(), map[string]string{"0": "camera", "1": "microphone"}); err != nil {
		c.t.Fatal(err)
	}
	n := 1
	if len(answer) > 0 {
		n = answer[0]
	}
	c.takeRemote(c.sig.last(c.t, false, n))
}

// publishAgain re-offers the camera (an ICE restart when c.local changed)
// and takes the node's second answer.
func (c *testClient) publishAgain() {
	c.t.Helper()
	n := len(c.sig.answers) + 1
	c.publish(0x1000, false, n)
}

// answer answers the node's n-th offer: receive everything offered.
func (c *testClient) answer(n int) {
	c.t.Helper()
	d, err := parseClientSDP(c.sig.last(c.t, true, n))
	if err != nil {
		c.t.Fatal(err)
	}
	c.remote = d.ice
	var b strings.Builder
	b.WriteString("v=0\r\no=- 2 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	var mids []string
	for _, s := range d.sections {
		if !s.rejected {
			mids = append(mids, s.mid)
		}
	}
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\n", strings.Join(mids, " "))
	for _, s := range d.sections {
		var pts []string
		for _, cd := range s.codecs {
			pts = append(pts, fmt.Sprint(cd.pt))
		}
		port := 9
		if s.rejected {
			port = 0
		}
		fmt.Fprintf(&b, "m=%s %d UDP/TLS/RTP/SAVPF %s\r\nc=IN IP4 0.0.0.0\r\n%sa=mid:%s\r\na=recvonly\r\na=rtcp-mux\r\n",
			s.kind, port, strings.Join(pts, " "), c.transportLines("active"), s.mid)
		if s.ext.abs != 0 { // accepted, as a browser does
			fmt.Fprintf(&b, "a=extmap:%d %s\r\n", s.ext.abs, extAbsSendTime)
		}
		for _, cd := range s.codecs {
			rtpmap := fmt.Sprintf("%d %s/%d", cd.pt, cd.name, cd.clockRate)
			if cd.channels > 1 {
				rtpmap += fmt.Sprintf("/%d", cd.channels)
			}
			fmt.Fprintf(&b, "a=rtpmap:%s\r\n", rtpmap)
			if cd.fmtp != "" {
				fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", cd.pt, cd.fmtp)
			}
		}
	}
	if err := c.peer.HandleAnswer(b.String()); err != nil {
		c.t.Fatal(err)
	}
}

// takeRemote reads the node's answer's transport.
func (c *testClient) takeRemote(sdp string) {
	c.t.Helper()
	d, err := parseClientSDP(sdp)
	if err != nil {
		c.t.Fatal(err)
	}
	c.remote = d.ice
	if !strings.Contains(sdp, "a=ice-lite") {
		c.t.Fatal("the node's description is not ice-lite")
	}
}

// connect runs ICE (one nominating check) and the DTLS handshake as the
// DTLS client, and keeps the SRTP keys.
func (c *testClient) connect() {
	c.t.Helper()
	c.check()
	c.handshake()
}

// check sends one nominating ICE check with the current credentials.
func (c *testClient) check() {
	c.t.Helper()
	var tie [8]byte
	req, err := buildMessage(stun.BindingRequest, stun.TransactionID,
		stun.NewUsername(c.remote.ufrag+":"+c.local.ufrag),
		stun.RawAttribute{Type: stun.AttrPriority, Value: []byte{0x6e, 0x7f, 0xff, 0xff}},
		stun.RawAttribute{Type: stun.AttrICEControlling, Value: tie[:]},
		stun.RawAttribute{Type: stun.AttrUseCandidate},
		stun.NewShortTermIntegrity(c.remote.pwd), stun.Fingerprint)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteToUDPAddrPort(req, c.node); err != nil {
		c.t.Fatal(err)
	}
}

// handshake runs DTLS as the client and keeps the SRTP keys.
func (c *testClient) handshake() {
	c.t.Helper()
	dc := newDTLSConn(&net.UDPAddr{}, func(b []byte) error {
		_, err := c.conn.WriteToUDPAddrPort(b, c.node)
		return err
	})
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // route what arrives during the handshake
		defer close(done)
		buf := make([]byte, maxPacket)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, _, err := c.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				continue
			}
			if classify(buf[:n]) == kindDTLS {
				dc.push(buf[:n])
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fp := c.peer.e.cert.fingerprint
	conn, keys, err := handshake(ctx, dc, dtlsClient, c.cert, fp, c.e.logs)
	close(stop)
	<-done
	_ = c.conn.SetReadDeadline(time.Time{})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close(); dc.Close() })
	c.keys = keys
	deadline := time.Now().Add(5 * time.Second)
	for c.peer.keys.Load() == nil {
		if time.Now().After(deadline) {
			c.t.Fatal("the node did not finish its handshake")
		}
		time.Sleep(time.Millisecond)
	}
}

// sendRTP encrypts and sends one packet. It allocates nothing.
func (c *testClient) sendRTP(h *rtp.Header, payload []byte) {
	n, err := h.MarshalTo(c.out)
	if err != nil {
		c.t.Fatal(err)
	}
	n += copy(c.out[n:], payload)
	out, err := c.keys.tx.EncryptRTP(c.out[:0], c.out[:n], &c.hdr)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.WriteToUDPAddrPort(out, c.node); err != nil {
		c.t.Fatal(err)
	}
}

// recvRTP reads until one RTP packet arrives (skipping RTCP and STUN),
// decrypts it into c.rhdr and returns its payload, or an error at the
// deadline. It allocates nothing.
func (c *testClient) recvRTP(deadline time.Time) ([]byte, error) {
	_ = c.conn.SetReadDeadline(deadline)
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(c.in)
		if err != nil {
			return nil, err
		}
		if classify(c.in[:n]) != kindRTP {
			continue
		}
		out, err := c.keys.rx.DecryptRTP(c.in[:0], c.in[:n], &c.rhdr)
		if err != nil {
			return nil, err
		}
		return out[rtpHeaderLen(out):], nil
	}
}

// pathRoom is a publisher and n subscribers of its camera, connected.
type pathRoom struct {
	pub   *testClient
	subs  []*testClient
	track *Track
}

func newPathRoom(tb testing.TB, e *Engine, n int) *pathRoom {
	tb.Helper()
	tracks := make(chan *Track, 1)
	pub := newTestClient(tb, e, PeerConfig{Publish: true, OnTrack: func(t *Track) { tracks <- t }})
	pub.publish(0x1000, false)
	pub.connect()
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true}
	key := vp8Payload(true)
	var t *Track
	for t == nil { // the track appears with its first packet
		pub.sendRTP(&hdr, key)
		hdr.SequenceNumber++
		select {
		case t = <-tracks:
		case <-time.After(20 * time.Millisecond):
		}
	}
	r := &pathRoom{pub: pub, track: t}
	for range n {
		sub := newTestClient(tb, e, PeerConfig{})
		if err := sub.peer.Start(); err != nil {
			tb.Fatal(err)
		}
		if err := sub.peer.Subscribe(t, QualityLow); err != nil {
			tb.Fatal(err)
		}
		sub.answer(1)
		sub.connect()
		r.subs = append(r.subs, sub)
	}
	return r
}

// vp8Payload is a 1,100-byte VP8 payload with a picture ID, a keyframe
// or not.
func vp8Payload(key bool) []byte {
	p := make([]byte, 1100)
	p[0], p[1], p[2], p[3] = 0x90, 0x80, 0x80, 0x01 // X, S; I; 15-bit picture ID
	p[4] = 0x01                                     // P=1: interframe
	if key {
		p[4] = 0x00
	}
	return p
}

// recvRTCP reads until a compound RTCP packet arrives and returns it
// decrypted, or an error at the deadline.
func (c *testClient) recvRTCP(deadline time.Time) ([]byte, error) {
	_ = c.conn.SetReadDeadline(deadline)
	for {
		n, _, err := c.conn.ReadFromUDPAddrPort(c.in)
		if err != nil {
			return nil, err
		}
		if classify(c.in[:n]) != kindRTCP {
			continue
		}
		return c.keys.rx.DecryptRTCP(c.in[:0], c.in[:n], nil)
	}
}
