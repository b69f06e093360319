package sfu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// The node's own SDP (offers to subscribers, answers to publishers),
// written with pion/sdp. It is ICE-lite (RFC 8445 §2.5) with every host
// candidate in the description, BUNDLE (RFC 8843) over one transport,
// rtcp-mux (RFC 5761), DTLS-SRTP (RFC 5763).

// mline is one media section of the node's SDP, as negotiate decides it.
type mline struct {
	kind     string // audio, video, or another media type (rejected)
	mid      string
	rejected bool
	proto    string // the client's, for a rejected section; else UDP/TLS/RTP/SAVPF
	formats  []string
	dir      direction // the node's
	codecs   []sdpCodec
	ext      []extEntry
	rids     []string // simulcast layers the node receives (RFC 8853)
	send     *sendLine
}

// extEntry is one a=extmap (RFC 8285 §8).
type extEntry struct {
	id  uint8
	uri string
}

// sendLine describes the one stream the node sends in a section: its
// SSRC and RTX SSRC (RFC 4588 §8.1 FID group), and the MediaStream and
// track ids the subscriber sees (RFC 8830 msid).
type sendLine struct {
	ssrc, rtx     uint32
	stream, track string
	cname         string
}

// localTransport is the session's transport as the node describes it.
type localTransport struct {
	ice         iceCreds
	fingerprint string
	setup       string // actpass in offers; passive or active in answers (RFC 5763 §5)
	candidates  []string
}

// writeSDP renders the node's description: version increments with each
// description the node sends (RFC 3264 §8).
func writeSDP(sessionID, version uint64, lines []mline, t localTransport) (string, error) {
	d := &sdp.SessionDescription{
		Origin: sdp.Origin{Username: "-", SessionID: sessionID, SessionVersion: version,
			NetworkType: "IN", AddressType: "IP4", UnicastAddress: "0.0.0.0"},
		SessionName:      "-",
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
	}
	var bundle []string
	for _, l := range lines {
		if !l.rejected {
			bundle = append(bundle, l.mid)
		}
	}
	d.Attributes = append(d.Attributes, sdp.NewPropertyAttribute("ice-lite"))
	if len(bundle) > 0 {
		d.Attributes = append(d.Attributes, sdp.NewAttribute("group", "BUNDLE "+strings.Join(bundle, " ")))
	}
	d.Attributes = append(d.Attributes, sdp.NewAttribute("msid-semantic", "WMS *"))
	for _, l := range lines {
		m, err := writeSection(l, t)
		if err != nil {
			return "", err
		}
		d.MediaDescriptions = append(d.MediaDescriptions, m)
	}
	b, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("sfu: write SDP: %w", err)
	}
	return string(b), nil
}

func writeSection(l mline, t localTransport) (*sdp.MediaDescription, error) {
	m := &sdp.MediaDescription{
		MediaName: sdp.MediaName{Media: l.kind, Port: sdp.RangedPort{Value: 9}, Protos: []string{"UDP", "TLS", "RTP", "SAVPF"}},
		ConnectionInformation: &sdp.ConnectionInformation{NetworkType: "IN", AddressType: "IP4",
			Address: &sdp.Address{Address: "0.0.0.0"}},
	}
	attr := func(k, v string) { m.Attributes = append(m.Attributes, sdp.NewAttribute(k, v)) }
	prop := func(k string) { m.Attributes = append(m.Attributes, sdp.NewPropertyAttribute(k)) }
	if l.rejected {
		// A rejected section keeps its place, mid and protocol, port 0
		// (RFC 3264 §6, RFC 8843 §7.3.3).
		m.MediaName.Port.Value = 0
		if l.proto != "" {
			m.MediaName.Protos = strings.Split(l.proto, "/")
		}
		m.MediaName.Formats = l.formats
		if len(m.MediaName.Formats) == 0 {
			m.MediaName.Formats = []string{"0"}
		}
		if l.mid != "" {
			attr("mid", l.mid)
		}
		prop("inactive")
		return m, nil
	}
	if len(l.codecs) == 0 {
		return nil, fmt.Errorf("sfu: section %q has no codec", l.mid)
	}
	for _, c := range l.codecs {
		m.MediaName.Formats = append(m.MediaName.Formats, strconv.Itoa(int(c.pt)))
	}
	attr("rtcp", "9 IN IP4 0.0.0.0")
	attr("ice-ufrag", t.ice.ufrag)
	attr("ice-pwd", t.ice.pwd)
	attr("fingerprint", t.fingerprint)
	attr("setup", t.setup)
	attr("mid", l.mid)
	for _, e := range l.ext {
		attr("extmap", strconv.Itoa(int(e.id))+" "+e.uri)
	}
	prop(l.dir.String())
	if l.send != nil {
		attr("msid", l.send.stream+" "+l.send.track)
	}
	prop("rtcp-mux")
	prop("rtcp-rsize")
	for _, c := range l.codecs {
		pt := strconv.Itoa(int(c.pt))
		rtpmap := pt + " " + c.name + "/" + strconv.Itoa(int(c.clockRate))
		if c.channels > 1 {
			rtpmap += "/" + strconv.Itoa(int(c.channels))
		}
		attr("rtpmap", rtpmap)
		for _, fb := range c.feedback {
			attr("rtcp-fb", pt+" "+fb)
		}
		if c.fmtp != "" {
			attr("fmtp", pt+" "+c.fmtp)
		}
	}
	if len(l.rids) > 0 {
		for _, r := range l.rids {
			attr("rid", r+" recv")
		}
		attr("simulcast", "recv "+strings.Join(l.rids, ";"))
	}
	if s := l.send; s != nil {
		if s.rtx != 0 {
			attr("ssrc-group", fmt.Sprintf("FID %d %d", s.ssrc, s.rtx))
		}
		for _, ssrc := range []uint32{s.ssrc, s.rtx} {
			if ssrc == 0 {
				continue
			}
			attr("ssrc", fmt.Sprintf("%d cname:%s", ssrc, s.cname))
			attr("ssrc", fmt.Sprintf("%d msid:%s %s", ssrc, s.stream, s.track))
		}
	}
	for _, c := range t.candidates {
		attr("candidate", c)
	}
	prop("end-of-candidates")
	return m, nil
}
