package sfu

import (
	"strings"
	"testing"
)

// firefoxOffer is the shape of Firefox ESR 153's simulcast offer: the
// video section bundle-only (port 0 with a=bundle-only), its layers in
// a=rid lines, extension ids shared across sections.
const firefoxOffer = "v=0\r\n" +
	"o=mozilla...THIS_IS_SDPARTA-99.0 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n" +
	"a=fingerprint:sha-256 18:5E:73:96:C3:A8:F6:AA:28:B9:C2:A9:6A:54:47:F0:BC:86:5C:C2:EF:60:F1:83:DD:08:D3:C9:72:C8:A6:F0\r\n" +
	"a=group:BUNDLE 0 1\r\na=ice-options:trickle\r\na=msid-semantic:WMS *\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 109 0\r\nc=IN IP4 0.0.0.0\r\na=sendonly\r\n" +
	"a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
	"a=ice-pwd:59b9ba572c524709fdc88b91f0abaafc\r\na=ice-ufrag:56e8d0ef\r\na=mid:0\r\na=rtcp-mux\r\n" +
	"a=rtpmap:109 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=setup:actpass\r\na=ssrc:2957950955 cname:{x}\r\n" +
	"m=video 0 UDP/TLS/RTP/SAVPF 120 124\r\nc=IN IP4 0.0.0.0\r\na=bundle-only\r\na=sendonly\r\n" +
	"a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=extmap:7 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n" +
	"a=extmap:9/sendonly urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=extmap:10/sendonly urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n" +
	"a=fmtp:124 apt=120\r\na=ice-pwd:59b9ba572c524709fdc88b91f0abaafc\r\na=ice-ufrag:56e8d0ef\r\na=mid:1\r\n" +
	"a=rid:q send\r\na=rid:h send\r\na=rtcp-fb:120 nack\r\na=rtcp-fb:120 nack pli\r\na=rtcp-mux\r\n" +
	"a=rtpmap:120 VP8/90000\r\na=rtpmap:124 rtx/90000\r\na=setup:actpass\r\na=simulcast:send q;h\r\n" +
	"a=ssrc:111 cname:{x}\r\na=ssrc:112 cname:{x}\r\n"

// TestAnswerFirefoxSimulcast: a bundle-only section is in the bundle, not
// rejected (RFC 8843 §6), and the answer takes its simulcast layers and
// the extension ids the node reads.
func TestAnswerFirefoxSimulcast(t *testing.T) {
	d, err := parseClientSDP(firefoxOffer)
	if err != nil {
		t.Fatal(err)
	}
	if v := d.sections[1]; v.rejected || v.kind != "video" || strings.Join(v.rids, ",") != "q,h" {
		t.Fatalf("video section %+v", v)
	}
	e := newPathEngine(t, false)
	c := newTestClient(t, e, PeerConfig{Publish: true})
	if err := c.peer.HandleOffer(firefoxOffer, map[string]string{"1": "camera"}); err != nil {
		t.Fatal(err)
	}
	answer := c.sig.last(t, false, 1)
	a, err := parseClientSDP(answer)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.sections) != 2 || a.sections[1].rejected {
		t.Fatalf("answer sections %+v", a.sections)
	}
	for _, want := range []string{"a=group:BUNDLE 0 1", "a=rid:q recv", "a=rid:h recv", "a=simulcast:recv q;h",
		"a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid", "a=recvonly"} {
		if !strings.Contains(answer, want) {
			t.Errorf("the answer lacks %q", want)
		}
	}
	if strings.Contains(answer, "PCMU") {
		t.Error("the answer accepts a codec the node does not forward")
	}
}
