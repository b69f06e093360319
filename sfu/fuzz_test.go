package sfu

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/invigil/invigil/sfu/internal/rtcpx"
	"github.com/pion/rtp"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// FuzzPayloadParsers: the VP8 descriptor and keyframe parsers read every
// publisher's packets on the hot path; no payload may make them panic or
// point outside it.
func FuzzPayloadParsers(f *testing.F) {
	f.Add([]byte{0x90, 0xC0, 0x80, 0x05, 0x01, 0x00, 0x9d, 0x01, 0x2a})
	f.Add([]byte{0x10, 0x00})
	f.Add([]byte{0x7c, 0x85, 0x88})       // H.264 FU-A start of an IDR
	f.Add([]byte{0x78, 0x00, 0x02, 0x67}) // H.264 STAP-A with an SPS
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		d := parseVP8(p)
		if !d.malformed {
			if d.size > len(p) || d.picIDAt >= len(p) || d.tl0At >= len(p) || (d.picID16 && d.picIDAt+1 >= len(p)) {
				t.Fatalf("descriptor %+v points outside %d bytes", d, len(p))
			}
			if d.picIDAt != 0 {
				_ = d.pictureID(p)
			}
		}
		vp8KeyframeStart(p)
		h264KeyframeStart(p)
		scratch := make([]byte, maxCachedPacket)
		if !d.malformed {
			rewriteVP8(d, p, scratch, 1, 1)
		}
	})
}

// FuzzHandleOffer: a client's offer goes through pion's SDP parser and
// answerer on a real Peer; no offer, however mangled, may panic or hang
// it, and the Peer closes cleanly after. (signaling checks size and
// sending sections first; this is what it hands on.)
func FuzzHandleOffer(f *testing.F) {
	e := newTestEngine(f)
	// A browser-shaped offer (simulcast camera and microphone) from pion.
	client, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		f.Fatal(err)
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := client.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			f.Fatal(err)
		}
	}
	offer, err := client.CreateOffer(nil)
	if err != nil {
		f.Fatal(err)
	}
	client.Close()
	f.Add(offer.SDP)
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n")
	f.Add("v=0\r\nm=audio 9 RTP 0\r\na=recvonly\r\n")
	f.Fuzz(func(t *testing.T, sdp string) {
		p, err := e.NewPeer(PeerConfig{ID: "PA_fuzz", Signal: &recorder{}, Publish: true})
		if err != nil {
			t.Fatal(err)
		}
		_ = p.HandleOffer(sdp, map[string]string{"0": "camera"})
		_ = p.AddCandidate(Candidate{Candidate: sdp})
		if err := p.Close(); err != nil {
			t.Logf("close: %v", err)
		}
	})
}

// FuzzDemux: every datagram a reader takes, from an address no session
// validated or from a connected client, whatever its bytes, goes through
// the demultiplexer (STUN, DTLS, SRTP, SRTCP) and, decrypted, through
// stream identification, forwarding and the RTCP handlers; none may panic,
// hang or reach another session. The seeds are real packets: a check, an
// RTP packet and compound RTCP of each kind the node reads.
func FuzzDemux(f *testing.F) {
	e := newPathEngine(f, false)
	r := newPathRoom(f, e, 1)
	pub, sub := r.pub, r.subs[0]
	// A reader of its own, so the fuzzer owns its routes; it shares the
	// engine and the sessions with the running one.
	l, err := newUDPLoop(e, e.loops[0].conn)
	if err != nil {
		f.Fatal(err)
	}
	pubAddr := pub.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	subAddr := sub.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	l.routes[pubAddr] = pub.peer
	l.routes[subAddr] = sub.peer
	stranger := netip.MustParseAddrPort("127.0.0.1:9")

	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, SequenceNumber: 7, Timestamp: 90}
	var plain [maxPacket]byte
	n, _ := hdr.MarshalTo(plain[:])
	n += copy(plain[n:], vp8Payload(true)[:200])
	f.Add(append([]byte(nil), plain[:n]...), uint8(0))
	f.Add(rtcpx.AppendPLI(nil, 1, 0x1000), uint8(1))
	f.Add(rtcpx.AppendNACK(nil, 1, sub.peer.sendIndex().ssrcs[0], []uint16{1, 2, 40}), uint8(1))
	rr, _ := rtcpx.AppendRR(nil, 1, []rtcpx.ReportBlock{{SSRC: 0x1000, TotalLost: 3, LSR: 5}})
	f.Add(rr, uint8(1))
	remb, _ := rtcpx.AppendREMB(nil, 1, 300_000, []uint32{0x1000})
	f.Add(remb, uint8(1))
	check, _ := buildMessage(stun.BindingRequest, stun.TransactionID, stun.NewUsername("x:y"), stun.Fingerprint)
	f.Add(check, uint8(2))
	f.Add([]byte{22, 254, 253, 0, 0}, uint8(3)) // a DTLS record header

	f.Fuzz(func(t *testing.T, b []byte, how uint8) {
		if len(b) > maxPacket {
			return
		}
		at := time.Now().UnixNano()
		buf := append(make([]byte, 0, maxPacket), b...)
		switch how % 4 {
		case 0: // decrypted RTP from the publisher
			var h rtp.Header
			if _, err := h.Unmarshal(buf); err != nil {
				return
			}
			pub.peer.rxMu.Lock()
			pub.peer.rx.pkt.Header = h
			pub.peer.rtpPlain(l.s, buf, at)
			pub.peer.rxMu.Unlock()
		case 1: // decrypted RTCP from the subscriber and from the publisher
			sub.peer.rtcpPlain(l.s, buf, at)
			pub.peer.rtcpPlain(l.s, append(make([]byte, 0, maxPacket), b...), at)
		case 2: // anything from an address no session knows
			l.handle(buf, stranger, at)
		case 3: // anything (encrypted or not) from a connected client
			l.handle(buf, pubAddr, at)
		}
		l.s.flush()
	})
}
