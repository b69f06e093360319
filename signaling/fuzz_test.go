package signaling

import (
	"testing"
)

// FuzzDecodeInbound: no frame a client can send makes decoding panic,
// and whatever decodes without error has a known type.
func FuzzDecodeInbound(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"join","token":"x","room":"r","id":"1"}`,
		`{"v":1,"type":"offer","sdp":"v=0\r\n","tracks":[{"mid":"0","source":"camera"}]}`,
		`{"v":1,"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}}`,
		`{"v":1,"type":"view","tiles":[{"identity":"a","height":300}]}`,
		`{"v":1,"type":"focus","identity":""}`,
		`{"v":2}`, `[]`, `null`, `{"type":"ping","ts":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeInbound(b)
		if err != nil {
			return
		}
		if _, known := clientMessages[m.Type]; !known {
			t.Fatalf("decoded unknown type %q without error", m.Type)
		}
	})
}

// FuzzVerifyToken: no token string makes verification panic or succeed
// without the secret.
func FuzzVerifyToken(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		if g, err := VerifyToken([]byte(testSecret), tok); err == nil {
			t.Fatalf("random token verified: %+v", g)
		}
	})
}

// FuzzSendingSections: the SDP check that runs before pion sees an offer
// never panics.
func FuzzSendingSections(f *testing.F) {
	f.Add("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendonly\r\n")
	f.Add("v=0\r\nm=audio 9 RTP 0\r\na=recvonly\r\n")
	f.Fuzz(func(t *testing.T, offer string) {
		sections, err := sendingSections(offer)
		if err != nil && sections != nil {
			t.Fatal("sections returned with an error")
		}
		for _, s := range sections {
			if s.kind != "audio" && s.kind != "video" {
				t.Fatalf("section of kind %q counted as sending", s.kind)
			}
		}
	})
}
