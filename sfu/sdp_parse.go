package sfu

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// What the node reads of a client's SDP (offer or answer): per media
// section its mid, direction, codecs, header extensions, simulcast RIDs
// and SSRCs, and for the session the ICE credentials, the DTLS
// fingerprint and role. pion/sdp parses the text; this file interprets it
// as JSEP (RFC 9429) uses it.

// Header extension URIs the node understands.
const (
	extMid        = "urn:ietf:params:rtp-hdrext:sdes:mid"                                       // RFC 8843 §15.2
	extRID        = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"                             // RFC 8852 §3.1
	extRepairedID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"                    // RFC 8852 §3.2
	extTWCC       = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01" // transport-wide CC
	// extAbsSendTime is webrtc.org's abs-send-time: the send time of a
	// packet, which a receiver's delay-based estimator (and so its REMB)
	// is computed from.
	extAbsSendTime = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
)

// Bounds on a client's SDP: far above what a browser sends, small enough
// that a hostile offer costs little.
const (
	maxSDPBytes    = 64 << 10
	maxSections    = 256
	maxCodecs      = 64 // per section
	maxRIDs        = 4
	maxSSRCs       = 16 // per section
	maxMidBytes    = 32
	maxSourceBytes = 64
)

// direction is a media section's a=sendrecv/sendonly/recvonly/inactive,
// from the side of whoever wrote the SDP.
type direction uint8

const (
	dirInactive direction = iota
	dirSendOnly
	dirRecvOnly
	dirSendRecv
)

func (d direction) sends() bool    { return d == dirSendOnly || d == dirSendRecv }
func (d direction) receives() bool { return d == dirRecvOnly || d == dirSendRecv }

func (d direction) String() string {
	switch d {
	case dirSendOnly:
		return "sendonly"
	case dirRecvOnly:
		return "recvonly"
	case dirSendRecv:
		return "sendrecv"
	}
	return "inactive"
}

// makeDirection builds a direction from what is sent and received.
func makeDirection(send, recv bool) direction {
	switch {
	case send && recv:
		return dirSendRecv
	case send:
		return dirSendOnly
	case recv:
		return dirRecvOnly
	}
	return dirInactive
}

// sdpCodec is one payload type of a section (RFC 8866 §6.6 rtpmap, fmtp;
// RFC 4585 §4.2 rtcp-fb).
type sdpCodec struct {
	pt        uint8
	name      string // encoding name as written: VP8, H264, opus, rtx
	clockRate uint32
	channels  uint16
	fmtp      string
	feedback  []string // "nack", "nack pli", "ccm fir", "transport-cc", "goog-remb"
}

// isRTX reports whether the codec is an RTX stream (RFC 4588 §8.6).
func (c sdpCodec) isRTX() bool { return strings.EqualFold(c.name, "rtx") }

// apt is the payload type an RTX codec repairs, or -1.
func (c sdpCodec) apt() int {
	v, err := strconv.Atoi(fmtpValue(c.fmtp, "apt"))
	if err != nil || !c.isRTX() {
		return -1
	}
	return v
}

// ssrcInfo is one a=ssrc of a section and, when an FID group names it,
// its RTX SSRC (RFC 5576 §4.2, RFC 4588 §8.1).
type ssrcInfo struct {
	ssrc, rtx uint32
}

// extIDs are the header extension ids a section negotiated (RFC 8285):
// 0 when absent. With BUNDLE they are the same in every section.
type extIDs struct {
	mid, rid, rrid, twcc, abs uint8
	// used has bit i set for every id i the client mapped, whatever the
	// URI: an id the node picks for itself must be none of them.
	used uint16
}

// merge takes the ids o names.
func (e *extIDs) merge(o extIDs) {
	if o.mid != 0 {
		e.mid = o.mid
	}
	if o.rid != 0 {
		e.rid = o.rid
	}
	if o.rrid != 0 {
		e.rrid = o.rrid
	}
	if o.twcc != 0 {
		e.twcc = o.twcc
	}
	if o.abs != 0 {
		e.abs = o.abs
	}
	e.used |= o.used
}

// clientSection is one media section of a client's SDP.
type clientSection struct {
	kind     string // audio, video, application, …
	mid      string
	rejected bool // port 0 without a=bundle-only
	dir      direction
	codecs   []sdpCodec
	ext      extIDs
	rids     []string // a=rid:<id> send, in a=simulcast order when given
	ssrcs    []ssrcInfo
}

// clientDesc is a client's SDP as the node uses it.
type clientDesc struct {
	sections    []clientSection
	ice         iceCreds
	fingerprint string // "sha-256 AB:…"
	setup       string // actpass, active, passive
	bundle      []string
}

var errSDP = errors.New("sfu: unusable SDP")

// parseClientSDP reads an offer or answer from a client.
func parseClientSDP(text string) (*clientDesc, error) {
	if len(text) > maxSDPBytes {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", errSDP, len(text), maxSDPBytes)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %v", errSDP, err)
	}
	if len(d.MediaDescriptions) > maxSections {
		return nil, fmt.Errorf("%w: %d media sections, the limit is %d", errSDP, len(d.MediaDescriptions), maxSections)
	}
	out := &clientDesc{}
	sessionUfrag, _ := d.Attribute("ice-ufrag")
	sessionPwd, _ := d.Attribute("ice-pwd")
	sessionFP, _ := d.Attribute("fingerprint")
	sessionSetup, _ := d.Attribute("setup")
	for _, a := range d.Attributes {
		if a.Key == "group" && strings.HasPrefix(a.Value, "BUNDLE") && out.bundle == nil {
			out.bundle = strings.Fields(a.Value)[1:]
		}
	}
	for i, m := range d.MediaDescriptions {
		s, err := parseSection(m)
		if err != nil {
			return nil, fmt.Errorf("%w: m-line %d: %v", errSDP, i, err)
		}
		out.sections = append(out.sections, s)
		if s.rejected {
			continue
		}
		if v, ok := m.Attribute("ice-ufrag"); ok && out.ice.ufrag == "" {
			out.ice.ufrag = v
		}
		if v, ok := m.Attribute("ice-pwd"); ok && out.ice.pwd == "" {
			out.ice.pwd = v
		}
		if v, ok := m.Attribute("fingerprint"); ok && out.fingerprint == "" {
			out.fingerprint = v
		}
		if v, ok := m.Attribute("setup"); ok && out.setup == "" {
			out.setup = v
		}
	}
	if out.ice.ufrag == "" {
		out.ice = iceCreds{ufrag: sessionUfrag, pwd: sessionPwd}
	}
	if out.fingerprint == "" {
		out.fingerprint = sessionFP
	}
	if out.setup == "" {
		out.setup = sessionSetup
	}
	return out, nil
}

// parseSection reads one media section.
func parseSection(m *sdp.MediaDescription) (clientSection, error) {
	// Port 0 rejects a section, unless it is bundle-only (RFC 8843
	// §6: in an offer, "port 0 and a=bundle-only" means "in the bundle
	// only", as Firefox offers every section after the first).
	_, bundleOnly := m.Attribute("bundle-only")
	s := clientSection{kind: m.MediaName.Media, dir: dirSendRecv, rejected: m.MediaName.Port.Value == 0 && !bundleOnly}
	byPT := map[uint8]int{} // payload type → index in s.codecs
	for _, f := range m.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 8)
		if err != nil {
			continue // not RTP (an application section's format)
		}
		if len(s.codecs) == maxCodecs {
			return s, fmt.Errorf("more than %d payload types", maxCodecs)
		}
		byPT[uint8(pt)] = len(s.codecs)
		s.codecs = append(s.codecs, sdpCodec{pt: uint8(pt)})
	}
	var simulcast string
	ridSend := map[string]bool{}
	for _, a := range m.Attributes {
		switch a.Key {
		case "mid":
			if len(a.Value) > maxMidBytes {
				return s, fmt.Errorf("mid longer than %d bytes", maxMidBytes)
			}
			s.mid = a.Value
		case "sendrecv":
			s.dir = dirSendRecv
		case "sendonly":
			s.dir = dirSendOnly
		case "recvonly":
			s.dir = dirRecvOnly
		case "inactive":
			s.dir = dirInactive
		case "rtpmap":
			pt, rest, ok := ptAttr(a.Value)
			if i, known := byPT[pt]; ok && known {
				parseRtpmap(&s.codecs[i], rest)
			}
		case "fmtp":
			if pt, rest, ok := ptAttr(a.Value); ok {
				if i, known := byPT[pt]; known {
					s.codecs[i].fmtp = rest
				}
			}
		case "rtcp-fb":
			if pt, rest, ok := ptAttr(a.Value); ok {
				if i, known := byPT[pt]; known && len(s.codecs[i].feedback) < 16 {
					s.codecs[i].feedback = append(s.codecs[i].feedback, rest)
				}
			}
		case "extmap":
			id, uri, ok := parseExtmap(a.Value)
			if !ok {
				continue
			}
			switch uri {
			case extMid:
				s.ext.mid = id
			case extRID:
				s.ext.rid = id
			case extRepairedID:
				s.ext.rrid = id
			case extTWCC:
				s.ext.twcc = id
			case extAbsSendTime:
				s.ext.abs = id
			}
			s.ext.used |= 1 << (id & 15)
		case "rid":
			// a=rid:<id> <direction> [restrictions] (RFC 8851 §10)
			f := strings.Fields(a.Value)
			if len(f) >= 2 && f[1] == "send" && len(ridSend) < maxRIDs && validRID(f[0]) {
				ridSend[f[0]] = true
				s.rids = append(s.rids, f[0])
			}
		case "simulcast":
			simulcast = a.Value
		case "ssrc":
			// a=ssrc:<ssrc-id> <attribute>[:<value>] (RFC 5576 §4.1)
			id, _, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
			ssrc, err := strconv.ParseUint(id, 10, 32)
			if err == nil && !hasSSRC(s.ssrcs, uint32(ssrc)) && len(s.ssrcs) < maxSSRCs {
				s.ssrcs = append(s.ssrcs, ssrcInfo{ssrc: uint32(ssrc)})
			}
		}
	}
	// FID groups pair a media SSRC with its RTX SSRC.
	for _, a := range m.Attributes {
		if a.Key != "ssrc-group" {
			continue
		}
		f := strings.Fields(a.Value)
		if len(f) == 3 && f[0] == "FID" {
			media, err1 := strconv.ParseUint(f[1], 10, 32)
			rtx, err2 := strconv.ParseUint(f[2], 10, 32)
			if err1 == nil && err2 == nil {
				for i := range s.ssrcs {
					if s.ssrcs[i].ssrc == uint32(media) {
						s.ssrcs[i].rtx = uint32(rtx)
					}
				}
				s.ssrcs = removeSSRC(s.ssrcs, uint32(rtx))
			}
		}
	}
	if simulcast != "" {
		s.rids = simulcastOrder(simulcast, s.rids)
	}
	return s, nil
}

// simulcastOrder orders rids as a=simulcast:send lists them (RFC 8853
// §5.1); alternatives (a,b) count as their first, paused ids (~x) are kept.
func simulcastOrder(attr string, rids []string) []string {
	f := strings.Fields(attr)
	if len(f) < 2 || f[0] != "send" {
		return rids
	}
	known := map[string]bool{}
	for _, r := range rids {
		known[r] = true
	}
	var out []string
	for _, alt := range strings.Split(f[1], ";") {
		id := strings.TrimPrefix(strings.Split(alt, ",")[0], "~")
		if known[id] {
			out = append(out, id)
			delete(known, id)
		}
	}
	for _, r := range rids { // declared but not listed
		if known[r] {
			out = append(out, r)
		}
	}
	return out
}

// validRID: RFC 8851 §10 rid-id is alphanumeric, '-' and '_'; at most 16
// characters here (browsers use one or two).
func validRID(id string) bool {
	if id == "" || len(id) > 16 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func hasSSRC(list []ssrcInfo, ssrc uint32) bool {
	for _, s := range list {
		if s.ssrc == ssrc {
			return true
		}
	}
	return false
}

func removeSSRC(list []ssrcInfo, ssrc uint32) []ssrcInfo {
	out := list[:0]
	for _, s := range list {
		if s.ssrc != ssrc {
			out = append(out, s)
		}
	}
	return out
}

// ptAttr splits "<pt> <rest>" (rtpmap, fmtp, rtcp-fb).
func ptAttr(v string) (uint8, string, bool) {
	head, rest, _ := strings.Cut(v, " ")
	pt, err := strconv.ParseUint(head, 10, 8)
	if err != nil {
		return 0, "", false
	}
	return uint8(pt), strings.TrimSpace(rest), true
}

// parseRtpmap reads "<name>/<clock rate>[/<channels>]".
func parseRtpmap(c *sdpCodec, v string) {
	parts := strings.Split(v, "/")
	c.name = parts[0]
	if len(parts) > 1 {
		if r, err := strconv.ParseUint(parts[1], 10, 32); err == nil {
			c.clockRate = uint32(r)
		}
	}
	if len(parts) > 2 {
		if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
			c.channels = uint16(ch)
		}
	}
}

// parseExtmap reads "<id>[/<direction>] <uri> …" (RFC 8285 §8).
func parseExtmap(v string) (uint8, string, bool) {
	f := strings.Fields(v)
	if len(f) < 2 {
		return 0, "", false
	}
	idText, _, _ := strings.Cut(f[0], "/")
	id, err := strconv.ParseUint(idText, 10, 8)
	if err != nil || id == 0 || id > 14 { // one-byte ids; two-byte ones are not used by browsers for these
		return 0, "", false
	}
	return uint8(id), f[1], true
}

// fmtpValue returns the value of key in an a=fmtp parameter list.
func fmtpValue(line, key string) string {
	for _, kv := range strings.Split(line, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok && strings.EqualFold(k, key) {
			return strings.ToLower(v)
		}
	}
	return ""
}
