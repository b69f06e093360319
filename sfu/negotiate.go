package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Negotiation (JSEP, RFC 9429) as the node does it: it answers clients'
// offers (a student's camera, microphone and screen; a proctor's
// talk-back microphone) and offers clients what they are subscribed to.
// A Peer's session is a list of media sections in SDP order; a section
// may carry what the client sends (recv), what the node sends (down), both
// or neither. The node never renumbers, removes or reuses a section: one
// that falls idle stays inactive, and a new subscription gets a new one
// (as pion's own answerer does; a client then never sees a receiver
// change tracks, which not every client handles).

// section is one media section of a Peer's session. Guarded by the
// Peer's mu.
type section struct {
	mid      string
	kind     string // audio, video, or another media type (always rejected)
	proto    string // the client's m= protocol, kept for a rejected section
	formats  []string
	rejected bool

	// The client's side, from its last offer or answer.
	clientDir direction
	codecs    []sdpCodec
	ext       extIDs
	rids      []string
	ssrcs     []ssrcInfo

	// recv: the client sends media here; source labels it.
	recv   bool
	source string

	// down is what the node sends here; nil: nothing. offered is the
	// down-track the node's last offer described.
	down      *DownTrack
	offered   *DownTrack
	ssrc, rtx uint32
}

// mediaKind reports whether the section can carry RTP.
func (s *section) mediaKind() bool { return s.kind == "audio" || s.kind == "video" }

var errOfferSections = errors.New("sfu: the offer changed the session's existing media sections")

// applyOffer folds a client's offer into the session: existing sections
// are updated in place, new ones appended. It returns the sections whose
// receiving stopped (their tracks end).
func (p *Peer) applyOfferLocked(d *clientDesc) (stopped []string, err error) {
	if len(d.sections) < len(p.sections) {
		return nil, fmt.Errorf("%w: %d sections, the session has %d", errOfferSections, len(d.sections), len(p.sections))
	}
	for i, cs := range d.sections {
		if i < len(p.sections) && p.sections[i].mid != cs.mid {
			return nil, fmt.Errorf("%w: section %d is mid %q, was %q", errOfferSections, i, cs.mid, p.sections[i].mid)
		}
		if cs.mid == "" && cs.kind != "application" && !cs.rejected {
			return nil, fmt.Errorf("%w: section %d has no mid (RFC 8843 requires one)", errSDP, i)
		}
	}
	bundled := map[string]bool{}
	for _, mid := range d.bundle {
		bundled[mid] = true
	}
	for i, cs := range d.sections {
		var s *section
		if i < len(p.sections) {
			s = p.sections[i]
		} else {
			s = &section{mid: cs.mid, kind: cs.kind}
			p.sections = append(p.sections, s)
		}
		wasRecv := s.recv
		p.updateFromClientLocked(s, cs)
		if s.mediaKind() && !s.rejected && len(d.bundle) > 0 && !bundled[s.mid] {
			// One transport for everything (max-bundle): a section
			// outside the group would need a transport of its own.
			s.rejected = true
		}
		s.recv = !s.rejected && s.mediaKind() && cs.dir.sends() && len(answerCodecs(s.kind, s.codecs)) > 0
		if src, ok := p.sources[s.mid]; ok {
			s.source = src
		} else if s.source == "" {
			s.source = defaultSource(s.kind)
		}
		if wasRecv && !s.recv {
			stopped = append(stopped, s.mid)
		}
		if s.rejected && s.down != nil {
			s.down.unbind()
		}
	}
	return stopped, nil
}

// updateFromClientLocked copies what the client said of a section.
func (p *Peer) updateFromClientLocked(s *section, cs clientSection) {
	s.rejected = cs.rejected || !s.mediaKind()
	s.clientDir = cs.dir
	s.formats = nil
	s.proto = ""
	if s.rejected {
		s.formats = sectionFormats(cs)
		s.proto = protoOf(cs)
	}
	if len(cs.codecs) > 0 {
		s.codecs = cs.codecs
	}
	s.ext = cs.ext
	s.rids = cs.rids
	s.ssrcs = cs.ssrcs
	// BUNDLE: one id per extension for the whole session (RFC 8843
	// §9.2), each section naming those it uses.
	p.ext.merge(cs.ext)
}

func sectionFormats(cs clientSection) []string {
	if cs.kind == "application" {
		return []string{"webrtc-datachannel"}
	}
	var out []string
	for _, c := range cs.codecs {
		out = append(out, strconv.Itoa(int(c.pt)))
	}
	return out
}

func protoOf(cs clientSection) string {
	if cs.kind == "application" {
		return "UDP/DTLS/SCTP"
	}
	return "UDP/TLS/RTP/SAVPF"
}

func defaultSource(kind string) string {
	if kind == "audio" {
		return "microphone"
	}
	return "camera"
}

// applyAnswerLocked folds a client's answer to the node's offer into the
// session and binds the down-tracks it accepted.
func (p *Peer) applyAnswerLocked(d *clientDesc) ([]string, error) {
	if len(d.sections) != len(p.sections) {
		return nil, fmt.Errorf("%w: the answer has %d sections, the offer had %d", errSDP, len(d.sections), len(p.sections))
	}
	var stopped []string
	for i, cs := range d.sections {
		s := p.sections[i]
		if cs.mid != s.mid && !(cs.rejected && cs.mid == "") {
			return nil, fmt.Errorf("%w: answer section %d is mid %q, offered %q", errSDP, i, cs.mid, s.mid)
		}
		wasRecv := s.recv
		p.updateFromClientLocked(s, cs)
		s.recv = !s.rejected && s.mediaKind() && cs.dir.sends() && len(answerCodecs(s.kind, s.codecs)) > 0
		if wasRecv && !s.recv {
			stopped = append(stopped, s.mid)
		}
	}
	return stopped, nil
}

// bindSendsLocked binds each section's down-track to what the client's
// last description accepted: the payload type it gave the source's codec
// and its RTX, if it receives on the section at all. A down-track whose
// codec the client did not accept forwards nothing
// (ErrCodecNotNegotiated, logged).
func (p *Peer) bindSendsLocked() {
	for _, s := range p.sections {
		d := s.down
		if d == nil {
			continue
		}
		if s.rejected || !s.clientDir.receives() {
			d.unbind()
			continue
		}
		main, rtx := sendCodecs(d.src.Codec(), s.codecs)
		if !p.clientHasPT(s, main.pt) {
			d.unbind()
			p.log.Debug("subscriber did not accept the codec", "track", d.src.id, "codec", d.src.Codec().MimeType, "err", ErrCodecNotNegotiated)
			continue
		}
		b := &binding{ssrc: s.ssrc, pt: main.pt, abs: s.ext.abs}
		if rtx != nil && s.rtx != 0 && p.clientHasPT(s, rtx.pt) {
			b.rtxSSRC, b.rtxPT = s.rtx, rtx.pt
		}
		d.bind(b, p)
	}
}

// clientHasPT reports whether the client listed pt in the section.
func (p *Peer) clientHasPT(s *section, pt uint8) bool {
	for _, c := range s.codecs {
		if c.pt == pt {
			return true
		}
	}
	return false
}

// placeSubscriptionsLocked reconciles the sections with the wanted
// subscriptions before an offer: a down-track no longer wanted leaves its
// section idle; a new one gets a new section.
func (p *Peer) placeSubscriptionsLocked() {
	placed := map[*DownTrack]bool{}
	for _, s := range p.sections {
		if s.down == nil {
			continue
		}
		if sub, ok := p.subs[s.down.src.id]; ok && sub.down == s.down {
			placed[s.down] = true
			continue
		}
		s.down.unbind()
		s.down, s.ssrc, s.rtx = nil, 0, 0
	}
	for _, sub := range p.subsInOrderLocked() {
		if placed[sub.down] {
			continue
		}
		kind := sub.down.src.Kind().String()
		s := &section{mid: p.nextMidLocked(), kind: kind, clientDir: dirInactive}
		p.sections = append(p.sections, s)
		s.down = sub.down
		s.ssrc = randomSSRC()
		if kind == "video" {
			s.rtx = randomSSRC()
		}
		sub.section = s
	}
}

// subsInOrderLocked lists the subscriptions in the order they were made,
// so new sections follow the order of Subscribe calls.
func (p *Peer) subsInOrderLocked() []*subscription {
	out := make([]*subscription, 0, len(p.subs))
	for _, s := range p.subs {
		out = append(out, s)
	}
	for i := 1; i < len(out); i++ { // insertion sort by serial: a handful
		for j := i; j > 0 && out[j].serial < out[j-1].serial; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// nextMidLocked names a new section: one more than the largest numeric
// mid so far (clients use 0, 1, …; a client's non-numeric mids never
// collide with a number).
func (p *Peer) nextMidLocked() string {
	next := 0
	for _, s := range p.sections {
		if n, err := strconv.Atoi(s.mid); err == nil && n >= next {
			next = n + 1
		}
	}
	return strconv.Itoa(next)
}

func randomSSRC() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) | 1 // never 0
}

// linesLocked describes the session's sections as the node's SDP says
// them: answer is true in an answer (where only what the client offered
// may appear), false in an offer.
func (p *Peer) linesLocked(answer bool) []mline {
	lines := make([]mline, 0, len(p.sections))
	for _, s := range p.sections {
		l := mline{kind: s.kind, mid: s.mid, rejected: s.rejected || !s.mediaKind(), proto: s.proto, formats: s.formats}
		if l.rejected {
			if l.proto == "" {
				l.proto = "UDP/TLS/RTP/SAVPF"
			}
			lines = append(lines, l)
			continue
		}
		var codecs []sdpCodec
		if s.recv {
			codecs = answerCodecs(s.kind, s.codecs)
		}
		send := s.down != nil && (!answer || s.clientDir.receives())
		if send {
			main, rtx := sendCodecs(s.down.src.Codec(), s.codecs)
			codecs = mergeCodecs(codecs, main, rtx)
			l.send = &sendLine{ssrc: s.ssrc, rtx: s.rtx, stream: s.down.src.streamID, track: s.down.src.id, cname: p.cname}
			if rtx == nil {
				l.send.rtx = 0
			}
		}
		if len(codecs) == 0 {
			// Nothing flows: any codec the client named (or the node's
			// own for the kind) keeps the section well formed.
			codecs = idleCodecs(s)
		}
		l.codecs = codecs
		l.dir = makeDirection(send, s.recv)
		if s.recv {
			l.ext = p.extEntries(s.kind)
			l.rids = s.rids // mirrored (RFC 8851 §5.1), and kept in re-offers
		}
		if send {
			// abs-send-time on what the node sends, so the subscriber's
			// estimator (and its REMB) sees the node's send times. An
			// answer keeps it only where the client offered it.
			if id := p.absIDLocked(); id != 0 && (!answer || s.ext.abs == id) {
				l.ext = appendExt(l.ext, extEntry{id: id, uri: extAbsSendTime})
			}
		}
		lines = append(lines, l)
	}
	return lines
}

// mergeCodecs adds the send codec (and its RTX) to a section's codecs
// unless a payload type of that number is there already.
func mergeCodecs(codecs []sdpCodec, main sdpCodec, rtx *sdpCodec) []sdpCodec {
	has := func(pt uint8) bool {
		for _, c := range codecs {
			if c.pt == pt {
				return true
			}
		}
		return false
	}
	if !has(main.pt) {
		codecs = append(codecs, main)
	}
	if rtx != nil && !has(rtx.pt) {
		codecs = append(codecs, *rtx)
	}
	return codecs
}

// idleCodecs lists one codec for a section that carries nothing.
func idleCodecs(s *section) []sdpCodec {
	for _, c := range s.codecs {
		if supportedCodec(s.kind, c) {
			return []sdpCodec{c}
		}
	}
	if len(s.codecs) > 0 {
		return s.codecs[:1]
	}
	if s.kind == "audio" {
		return []sdpCodec{{pt: ptOpus, name: "opus", clockRate: 48000, channels: 2, fmtp: opusFmtp}}
	}
	return []sdpCodec{{pt: ptVP8, name: "VP8", clockRate: 90000}}
}

// extEntries are the header extensions the node reads on what a client
// sends, with the session's ids.
func (p *Peer) extEntries(kind string) []extEntry {
	var out []extEntry
	add := func(id uint8, uri string) {
		if id != 0 {
			out = append(out, extEntry{id: id, uri: uri})
		}
	}
	add(p.ext.mid, extMid)
	if kind == "video" {
		add(p.ext.rid, extRID)
		add(p.ext.rrid, extRepairedID)
	}
	add(p.ext.twcc, extTWCC)
	return out
}

// appendExt adds e unless an entry of its URI is there already.
func appendExt(list []extEntry, e extEntry) []extEntry {
	for _, x := range list {
		if x.uri == e.uri {
			return list
		}
	}
	return append(list, e)
}

// absIDLocked is the session's id for abs-send-time: the client's, when
// it has mapped the extension, else one the node picks once — 2, as
// Chromium numbers it, unless the client uses 2 for something else, then
// the lowest one-byte id (RFC 8285 §4.2) nobody uses. 0: none free.
func (p *Peer) absIDLocked() uint8 {
	if p.ext.abs != 0 {
		return p.ext.abs
	}
	for _, id := range [...]uint8{2, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14} {
		if p.ext.used&(1<<id) == 0 {
			p.ext.abs = id
			p.ext.used |= 1 << id
			return id
		}
	}
	return 0
}

// setupFor is the node's a=setup answering a client's: it takes the role
// the client leaves (RFC 5763 §5), passive when the client can be either.
func setupFor(client string) (string, dtlsRole, error) {
	switch strings.ToLower(client) {
	case "", "actpass", "active":
		return "passive", dtlsServer, nil
	case "passive":
		return "active", dtlsClient, nil
	}
	return "", 0, fmt.Errorf("%w: a=setup:%s", errSDP, client)
}

// roleFromAnswer is the node's DTLS role after a client answered the
// node's actpass offer.
func roleFromAnswer(client string) (dtlsRole, error) {
	switch strings.ToLower(client) {
	case "active", "":
		return dtlsServer, nil
	case "passive":
		return dtlsClient, nil
	}
	return 0, fmt.Errorf("%w: answer a=setup:%s", errSDP, client)
}
