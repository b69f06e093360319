package loadtest

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// The lean client's SDP: a student's fixed offer (one simulcast camera
// section, one microphone section), a proctor's answer to whatever the
// node offers (every section received, recvonly, VP8 or Opus, no RTX),
// and what either needs from the node's description. pion/sdp reads the
// node's; ours are written as text.

// Header extension ids of the student's offer (RFC 8285); the node's
// answer keeps them (RFC 8285 §5).
const (
	extIDMid  = 1
	extIDRID  = 2
	extIDTWCC = 3
	ptVP8     = 96
	ptOpus    = 111
	midCamera = "0"
	midMic    = "1"
)

// Header extension URIs.
const (
	uriMid  = "urn:ietf:params:rtp-hdrext:sdes:mid"
	uriRID  = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
	uriTWCC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)

// nodeDesc is what the lean client takes from the node's SDP.
type nodeDesc struct {
	ufrag, pwd  string
	fingerprint string
	// lite: the node is an ICE-lite agent (RFC 8445 §2.5), always
	// controlled; a full agent is controlling when it offers.
	lite bool
	// setup is the node's DTLS role (RFC 8842 §5.2): "active", the
	// node is the DTLS client (a pion answer); otherwise this side is.
	setup string
	// candidate is the node's loopback UDP host candidate if the
	// description lists one; a full agent trickles it instead.
	candidate netip.AddrPort
	sections  []nodeSection
}

// nodeSection is one media section of a node offer.
type nodeSection struct {
	kind, mid, proto string
	port             int
	formats          []string
	dir              string // the node's: sendonly, recvonly, sendrecv, inactive
	pt               int    // the VP8 or Opus payload type, -1 if none
	fmtp             string // of pt
	feedback         []string
	midExt           int
	ssrcs            []ssrcLine // the streams the node sends in it
}

// ssrcLine is one a=ssrc … msid:<stream> <track> of the node.
type ssrcLine struct {
	ssrc   uint32
	stream string
}

var errNodeSDP = errors.New("the node's SDP is unusable")

// parseNodeSDP reads the node's offer or answer.
func parseNodeSDP(text string) (*nodeDesc, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %v", errNodeSDP, err)
	}
	out := &nodeDesc{}
	out.ufrag, _ = d.Attribute("ice-ufrag")
	out.pwd, _ = d.Attribute("ice-pwd")
	out.fingerprint, _ = d.Attribute("fingerprint")
	_, out.lite = d.Attribute("ice-lite")
	out.setup, _ = d.Attribute("setup")
	for _, m := range d.MediaDescriptions {
		s := nodeSection{kind: m.MediaName.Media, port: m.MediaName.Port.Value, formats: m.MediaName.Formats,
			proto: strings.Join(m.MediaName.Protos, "/"), dir: "sendrecv", pt: -1}
		want := "VP8/90000"
		if s.kind == "audio" {
			want = "opus/48000"
		}
		fid := map[uint32]bool{}
		for _, a := range m.Attributes {
			switch a.Key {
			case "ice-ufrag":
				if out.ufrag == "" {
					out.ufrag = a.Value
				}
			case "ice-pwd":
				if out.pwd == "" {
					out.pwd = a.Value
				}
			case "fingerprint":
				if out.fingerprint == "" {
					out.fingerprint = a.Value
				}
			case "setup":
				if out.setup == "" {
					out.setup = a.Value
				}
			case "candidate":
				if ap, ok := udpLoopbackCandidate(a.Value); ok && !out.candidate.IsValid() {
					out.candidate = ap
				}
			case "mid":
				s.mid = a.Value
			case "sendonly", "recvonly", "sendrecv", "inactive":
				s.dir = a.Key
			case "rtpmap":
				pt, rest, _ := strings.Cut(a.Value, " ")
				if s.pt < 0 && strings.HasPrefix(strings.ToLower(rest), strings.ToLower(want)) {
					s.pt, _ = strconv.Atoi(pt)
				}
			case "extmap":
				id, uri, _ := strings.Cut(a.Value, " ")
				if uri == uriMid {
					s.midExt, _ = strconv.Atoi(id)
				}
			case "ssrc-group":
				f := strings.Fields(a.Value)
				if len(f) == 3 && f[0] == "FID" {
					if rtx, err := strconv.ParseUint(f[2], 10, 32); err == nil {
						fid[uint32(rtx)] = true
					}
				}
			}
		}
		for _, a := range m.Attributes {
			switch a.Key {
			case "fmtp", "rtcp-fb":
				pt, rest, _ := strings.Cut(a.Value, " ")
				if n, err := strconv.Atoi(pt); err == nil && n == s.pt {
					if a.Key == "fmtp" {
						s.fmtp = rest
					} else {
						s.feedback = append(s.feedback, rest)
					}
				}
			case "ssrc":
				// a=ssrc:<ssrc> msid:<stream> <track> (RFC 5576, RFC 8830)
				id, rest, _ := strings.Cut(a.Value, " ")
				stream, ok := strings.CutPrefix(rest, "msid:")
				n, err := strconv.ParseUint(id, 10, 32)
				if ok && err == nil && !fid[uint32(n)] {
					stream, _, _ = strings.Cut(stream, " ")
					s.ssrcs = append(s.ssrcs, ssrcLine{ssrc: uint32(n), stream: stream})
				}
			}
		}
		out.sections = append(out.sections, s)
	}
	if out.ufrag == "" || out.pwd == "" || out.fingerprint == "" {
		return nil, fmt.Errorf("%w: no ICE credentials or fingerprint", errNodeSDP)
	}
	return out, nil
}

// udpLoopbackCandidate reads an a=candidate value, or a trickled
// candidate's line (RFC 8839 §5.1: foundation, component, transport,
// priority, address, port, "typ", type), and returns its address if it
// is a UDP host candidate of component 1 on an IPv4 loopback address.
func udpLoopbackCandidate(v string) (netip.AddrPort, bool) {
	f := strings.Fields(strings.TrimPrefix(v, "candidate:"))
	if len(f) < 8 || f[1] != "1" || !strings.EqualFold(f[2], "udp") || f[6] != "typ" || f[7] != "host" {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(f[4])
	port, perr := strconv.ParseUint(f[5], 10, 16)
	if err != nil || perr != nil || !ip.Is4() || !ip.IsLoopback() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, uint16(port)), true
}

// transportLines are every section's ICE, DTLS and candidate lines.
func (lp *leanPeer) transportLines(b *strings.Builder, setup string) {
	fmt.Fprintf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:%s\r\na=setup:%s\r\n",
		lp.ufrag, lp.pwd, lp.k.fingerprint, setup)
}

func (lp *leanPeer) candidateLine(b *strings.Builder) {
	// One host candidate: the participant's own address on the shared
	// socket (RFC 8445 §5.1.2 priority for a host candidate).
	fmt.Fprintf(b, "a=candidate:1 1 udp 2130706431 %s %d typ host\r\na=end-of-candidates\r\n", lp.local, lp.k.conn.Port())
}

func sessionHead(b *strings.Builder, id uint64, mids []string) {
	fmt.Fprintf(b, "v=0\r\no=- %d 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", id)
	if len(mids) > 0 {
		fmt.Fprintf(b, "a=group:BUNDLE %s\r\n", strings.Join(mids, " "))
	}
	b.WriteString("a=msid-semantic: WMS *\r\n")
}

// studentOffer is a student's offer: the camera (its layers as RFC 8853
// simulcast, or one stream) and the microphone, sendonly, bundled, with
// the mid, rid and transport-wide CC header extensions.
func (lp *leanPeer) studentOffer(layers []videoLayer) string {
	ls := lp.st
	var b strings.Builder
	sessionHead(&b, uint64(ls.audio.ssrc), []string{midCamera, midMic})
	id := lp.p.identity
	b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	lp.transportLines(&b, "actpass")
	fmt.Fprintf(&b, "a=mid:%s\r\na=extmap:%d %s\r\n", midCamera, extIDMid, uriMid)
	if layers[0].rid != "" {
		fmt.Fprintf(&b, "a=extmap:%d %s\r\n", extIDRID, uriRID)
	}
	fmt.Fprintf(&b, "a=extmap:%d %s\r\n", extIDTWCC, uriTWCC)
	fmt.Fprintf(&b, "a=sendonly\r\na=msid:%s camera\r\na=rtcp-mux\r\na=rtcp-rsize\r\n", id)
	fmt.Fprintf(&b, "a=rtpmap:%d VP8/90000\r\n", ptVP8)
	for _, fb := range []string{"transport-cc", "ccm fir", "nack", "nack pli"} {
		fmt.Fprintf(&b, "a=rtcp-fb:%d %s\r\n", ptVP8, fb)
	}
	if layers[0].rid != "" {
		var rids []string
		for _, l := range layers {
			fmt.Fprintf(&b, "a=rid:%s send\r\n", l.rid)
			rids = append(rids, l.rid)
		}
		fmt.Fprintf(&b, "a=simulcast:send %s\r\n", strings.Join(rids, ";"))
	} else {
		fmt.Fprintf(&b, "a=ssrc:%d cname:%s\r\na=ssrc:%d msid:%s camera\r\n", ls.video[0].ssrc, id, ls.video[0].ssrc, id)
	}
	lp.candidateLine(&b)
	b.WriteString("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
	lp.transportLines(&b, "actpass")
	fmt.Fprintf(&b, "a=mid:%s\r\na=extmap:%d %s\r\na=extmap:%d %s\r\n", midMic, extIDMid, uriMid, extIDTWCC, uriTWCC)
	fmt.Fprintf(&b, "a=sendonly\r\na=msid:%s microphone\r\na=rtcp-mux\r\na=rtcp-rsize\r\n", id)
	fmt.Fprintf(&b, "a=rtpmap:%d opus/48000/2\r\na=rtcp-fb:%d transport-cc\r\na=fmtp:%d minptime=10;useinbandfec=1\r\n", ptOpus, ptOpus, ptOpus)
	fmt.Fprintf(&b, "a=ssrc:%d cname:%s\r\na=ssrc:%d msid:%s microphone\r\n", ls.audio.ssrc, id, ls.audio.ssrc, id)
	lp.candidateLine(&b)
	return b.String()
}

// proctorAnswer answers a node offer: every section it sends on is
// received (recvonly) with its VP8 or Opus payload type alone (no RTX:
// retransmissions come on the media SSRC, as with the pion client), NACK
// and keyframe feedback; a section without either codec is rejected.
func (lp *leanPeer) proctorAnswer(d *nodeDesc, version int) string {
	var body strings.Builder
	var mids []string
	for _, s := range d.sections {
		accept := s.port != 0 && s.pt >= 0 && (s.kind == "audio" || s.kind == "video")
		if !accept {
			formats := strings.Join(s.formats, " ")
			if formats == "" {
				formats = "0"
			}
			fmt.Fprintf(&body, "m=%s 0 %s %s\r\nc=IN IP4 0.0.0.0\r\n", s.kind, s.proto, formats)
			if s.mid != "" {
				fmt.Fprintf(&body, "a=mid:%s\r\n", s.mid)
			}
			body.WriteString("a=inactive\r\n")
			continue
		}
		mids = append(mids, s.mid)
		fmt.Fprintf(&body, "m=%s 9 UDP/TLS/RTP/SAVPF %d\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n", s.kind, s.pt)
		lp.transportLines(&body, "active")
		fmt.Fprintf(&body, "a=mid:%s\r\n", s.mid)
		if s.midExt != 0 {
			fmt.Fprintf(&body, "a=extmap:%d %s\r\n", s.midExt, uriMid)
		}
		dir := "inactive"
		if s.dir == "sendonly" || s.dir == "sendrecv" {
			dir = "recvonly"
		}
		fmt.Fprintf(&body, "a=%s\r\na=rtcp-mux\r\na=rtcp-rsize\r\n", dir)
		if s.kind == "audio" {
			fmt.Fprintf(&body, "a=rtpmap:%d opus/48000/2\r\n", s.pt)
		} else {
			fmt.Fprintf(&body, "a=rtpmap:%d VP8/90000\r\n", s.pt)
		}
		for _, fb := range s.feedback {
			switch fb {
			case "nack", "nack pli", "ccm fir":
				fmt.Fprintf(&body, "a=rtcp-fb:%d %s\r\n", s.pt, fb)
			}
		}
		if s.fmtp != "" {
			fmt.Fprintf(&body, "a=fmtp:%d %s\r\n", s.pt, s.fmtp)
		}
		lp.candidateLine(&body)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=- %d %d IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", lp.sessionID, version)
	if len(mids) > 0 {
		fmt.Fprintf(&b, "a=group:BUNDLE %s\r\n", strings.Join(mids, " "))
	}
	b.WriteString("a=msid-semantic: WMS *\r\n")
	b.WriteString(body.String())
	return b.String()
}
