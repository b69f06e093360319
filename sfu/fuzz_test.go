package sfu

import (
	"testing"

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
