package sfu

import (
	"encoding/binary"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// What a client sends, on the goroutine that read it: SRTP decrypted in
// place, its stream found by SSRC (or, the first time, by the SDP and the
// mid and rid header extensions), counted for receiver reports, NACKs and
// transport-wide CC feedback, and handed to its track, which forwards it.

// maxStreams bounds the RTP streams (SSRCs) one client may send: three
// simulcast layers and their RTX for a camera, a screen and its RTX, a
// microphone, and room to spare. An SSRC beyond it is dropped.
const maxStreams = 16

// rxConfig is what negotiation tells the packet path about the client's
// streams; replaced whole after each exchange, never changed.
type rxConfig struct {
	ext      extIDs
	sections []rxSection
}

// rxSection is one section on which the client sends.
type rxSection struct {
	mid    string
	kind   Kind
	source string
	codecs []sdpCodec // the payload types the node answered
	rids   []string
	ssrcs  []ssrcInfo // from a=ssrc lines: SSRCs known before any packet
}

// publishRxConfigLocked makes the session's receiving sections known to
// the packet path.
func (p *Peer) publishRxConfigLocked() {
	cfg := &rxConfig{ext: p.ext}
	for _, s := range p.sections {
		if !s.recv {
			continue
		}
		kind := KindAudio
		if s.kind == "video" {
			kind = KindVideo
		}
		cfg.sections = append(cfg.sections, rxSection{mid: s.mid, kind: kind, source: s.source,
			codecs: answerCodecs(s.kind, s.codecs), rids: s.rids, ssrcs: s.ssrcs})
	}
	p.rxcfg.Store(cfg)
}

// inStream is one SSRC the client sends: a layer of a track, or its RTX.
type inStream struct {
	ssrc  uint32
	track *Track
	layer *layer
	rtx   bool // a repair stream (RFC 4588) of layer
	stats rxStats
	nack  *nackList // the layer's missing packets; nil for audio and RTX
	// rate and fraction are the last report interval's bitrate (bits/s)
	// and loss, set with each receiver report.
	rate      uint64
	fraction  float64
	rateBytes uint64 // the layer's bytes at the last report
}

// rxState is what the node keeps of the client's streams. Guarded by the
// Peer's rxMu.
type rxState struct {
	p       *Peer
	keys    *srtpKeys
	pkt     rtp.Packet // scratch: the packet being handled
	rtcpHdr rtcp.Header
	repair  [maxPacket]byte // scratch: an RTX packet rebuilt as the original
	streams []*inStream
	tracks  []*Track // the client's published tracks, by section
	twcc    twccState
	rtcp    rtcpTimers
	ssrc    uint32 // the node's SSRC in the RTCP it sends this client
	missing int    // packets the streams miss (at least): NACKs are due only then
	refused int    // SSRCs refused (unknown or over the limit), for the log
}

func (rx *rxState) init(p *Peer) {
	rx.p = p
	rx.ssrc = randomSSRC()
	rx.streams = make([]*inStream, 0, maxStreams)
}

// rtpIn handles one SRTP packet from the client.
func (p *Peer) rtpIn(s *sender, b []byte, at int64) {
	p.rxMu.Lock()
	rx := &p.rx
	if rx.keys == nil {
		p.rxMu.Unlock()
		p.e.counter.drops[dropNotConnected].Add(1)
		return // before the handshake's end nothing can be decrypted
	}
	out, err := rx.keys.rx.DecryptRTP(b[:0], b, &rx.pkt.Header)
	if err != nil {
		p.rxMu.Unlock()
		p.e.counter.srtpErrors.Add(1)
		return
	}
	p.rtpPlain(s, out, at)
	p.rxMu.Unlock()
}

// rtpPlain handles one decrypted RTP packet whose header is parsed into
// rx.pkt. The caller holds rxMu.
func (p *Peer) rtpPlain(s *sender, out []byte, at int64) {
	rx := &p.rx
	pkt := &rx.pkt
	hlen := rtpHeaderLen(out)
	end := len(out)
	if pkt.Header.Padding && end > hlen {
		end -= int(out[end-1])
	}
	if end < hlen {
		p.e.counter.malformed.Add(1)
		return
	}
	pkt.Payload = out[hlen:end]
	st := rx.find(pkt.Header.SSRC)
	if st == nil {
		if st = rx.identify(&pkt.Header); st == nil {
			return
		}
	}
	if id := p.rxcfg.Load().ext.twcc; id != 0 {
		if v := pkt.Header.GetExtension(id); len(v) >= 2 {
			rx.twcc.record(binary.BigEndian.Uint16(v), at)
		}
	}
	st.stats.received(pkt.Header.SequenceNumber, pkt.Header.Timestamp, at, st.track.codec.ClockRate)
	raw := out[:end]
	if st.rtx {
		if len(pkt.Payload) < 2 {
			return // a padding-only probe (bandwidth estimation)
		}
		raw = rx.unwrapRTX(st)
		if raw == nil {
			return
		}
		if main := rx.find(st.layer.ssrc); main != nil && main.nack != nil {
			main.nack.received(pkt.Header.SequenceNumber)
		}
	} else if st.nack != nil {
		if st.nack.arrived(pkt.Header.SequenceNumber, at) {
			rx.missing++
		}
	}
	st.track.forward(s, st.layer, pkt, raw, at)
}

// rtpHeaderLen is the length of the RTP header at the start of b: the
// fixed part, the CSRCs and the extension (RFC 3550 §5.3.1). b is at
// least a header long (the SRTP context parsed it).
func rtpHeaderLen(b []byte) int {
	n := 12 + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 && len(b) >= n+4 {
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	return n
}

// find returns the stream of ssrc, or nil.
func (rx *rxState) find(ssrc uint32) *inStream {
	for _, st := range rx.streams {
		if st.ssrc == ssrc {
			return st
		}
	}
	return nil
}

// unwrapRTX turns the RTX packet in rx.pkt into the packet it repairs
// (RFC 4588 §4: the original sequence number in the payload's first two
// bytes), in rx.repair; rx.pkt then describes that packet.
func (rx *rxState) unwrapRTX(st *inStream) []byte {
	pkt := &rx.pkt
	osn := binary.BigEndian.Uint16(pkt.Payload)
	pt, ok := rx.aptOf(st.track, pkt.Header.PayloadType)
	if !ok {
		return nil
	}
	pkt.Header.SSRC = st.layer.ssrc
	pkt.Header.SequenceNumber = osn
	pkt.Header.PayloadType = pt
	pkt.Header.Padding = false
	n, err := pkt.Header.MarshalTo(rx.repair[:])
	if err != nil || n+len(pkt.Payload)-2 > len(rx.repair) {
		return nil
	}
	m := copy(rx.repair[n:], pkt.Payload[2:])
	pkt.Payload = rx.repair[n : n+m]
	return rx.repair[:n+m]
}

// aptOf is the payload type an RTX payload type repairs in t's section.
func (rx *rxState) aptOf(t *Track, rtxPT uint8) (uint8, bool) {
	for _, c := range t.codecs {
		if c.pt == rtxPT {
			if a := c.apt(); a >= 0 {
				return uint8(a), true
			}
		}
	}
	return 0, false
}

// identify places an SSRC seen for the first time: by the SDP's a=ssrc
// lines, else by the packet's mid and rid (or repaired rid) header
// extensions (RFC 8843 §9.2, RFC 8852). A main stream makes its layer,
// and its section's track if it is the first; an RTX stream needs its
// layer seen first. Unknown SSRCs are dropped.
func (rx *rxState) identify(h *rtp.Header) *inStream {
	p := rx.p
	if len(rx.streams) == maxStreams {
		rx.refuse()
		return nil
	}
	cfg := p.rxcfg.Load()
	sec, rid, rtx := -1, "", false
	var fidMain uint32 // the media SSRC an a=ssrc-group:FID pairs this RTX SSRC with
	for i, s := range cfg.sections {
		for _, ss := range s.ssrcs {
			switch h.SSRC {
			case ss.ssrc:
				sec = i
			case ss.rtx:
				sec, rtx, fidMain = i, true, ss.ssrc
			}
		}
	}
	if sec < 0 && cfg.ext.mid != 0 {
		mid := string(h.GetExtension(cfg.ext.mid))
		for i, s := range cfg.sections {
			if s.mid == mid {
				sec = i
			}
		}
	}
	// A simulcast layer names itself in every packet, whether or not the
	// SDP lists its SSRC (Firefox does, without saying which layer).
	if cfg.ext.rrid != 0 {
		if v := h.GetExtension(cfg.ext.rrid); len(v) > 0 {
			rid, rtx = string(v), true
		}
	}
	if rid == "" && cfg.ext.rid != 0 {
		rid = string(h.GetExtension(cfg.ext.rid))
	}
	if sec < 0 {
		rx.refuse()
		return nil
	}
	s := &cfg.sections[sec]
	codec, isRTX, ok := payloadType(s, h.PayloadType)
	if !ok {
		rx.refuse()
		return nil
	}
	rtx = rtx || isRTX
	if len(s.rids) > 1 && rid == "" && !rtx {
		rx.refuse() // a simulcast section's stream must name its layer
		return nil
	}
	t := rx.trackFor(s, codec)
	if t == nil {
		return nil
	}
	if rtx {
		l := t.repairedLayer(rid, fidMain)
		if l == nil {
			return nil // its layer has not sent yet (a probe): dropped
		}
		st := &inStream{ssrc: h.SSRC, track: t, layer: l, rtx: true}
		rx.streams = append(rx.streams, st)
		return st
	}
	l, fresh := t.addLayer(rid, h.SSRC)
	if l == nil {
		rx.refuse()
		return nil
	}
	st := &inStream{ssrc: h.SSRC, track: t, layer: l}
	if t.kind == KindVideo {
		st.nack = newNACKList()
	}
	rx.streams = append(rx.streams, st)
	if fresh {
		p.log.Debug("track layer published", "track", t.id, "kind", t.kind.String(), "source", t.source, "rid", rid, "codec", t.codec.MimeType)
	}
	return st
}

func (rx *rxState) refuse() {
	rx.refused++
	rx.p.e.counter.unknownSSRC.Add(1)
}

// payloadType finds pt among a section's answered codecs.
func payloadType(s *rxSection, pt uint8) (c sdpCodec, rtx, ok bool) {
	for _, c := range s.codecs {
		if c.pt != pt {
			continue
		}
		if c.isRTX() {
			for _, m := range s.codecs {
				if int(m.pt) == c.apt() {
					return m, true, true
				}
			}
			return c, true, false
		}
		return c, false, true
	}
	return sdpCodec{}, false, false
}

// trackFor returns the client's track of section s, making it (and
// announcing it) on its first stream.
func (rx *rxState) trackFor(s *rxSection, codec sdpCodec) *Track {
	for _, t := range rx.tracks {
		if t.mid == s.mid && !t.ended() {
			return t
		}
	}
	p := rx.p
	kind := "audio"
	if s.kind == KindVideo {
		kind = "video"
	}
	t := newTrack(newID("TR_"), p, s, codecOf(kind, codec))
	rx.tracks = append(rx.tracks, t)
	p.e.addTrack(t)
	if fn := p.cfg.OnTrack; fn != nil {
		p.events.post(func() { fn(t) })
	}
	return t
}

// endTracksLocked ends the client's tracks on the given sections: their
// streams are forgotten, their subscribers get nothing more, and the
// caller hears OnTrackEnded after OnTrack. The caller holds p.mu.
func (p *Peer) endTracksLocked(mids []string) {
	if len(mids) == 0 {
		return
	}
	p.rxMu.Lock()
	rx := &p.rx
	var ended []*Track
	keep := rx.tracks[:0]
	for _, t := range rx.tracks {
		stop := false
		for _, mid := range mids {
			if t.mid == mid {
				stop = true
			}
		}
		if stop {
			ended = append(ended, t)
		} else {
			keep = append(keep, t)
		}
	}
	clear(rx.tracks[len(keep):])
	rx.tracks = keep
	streams := rx.streams[:0]
	for _, st := range rx.streams {
		if !st.track.ended() && !contains(ended, st.track) {
			streams = append(streams, st)
		}
	}
	clear(rx.streams[len(streams):])
	rx.streams = streams
	p.rxMu.Unlock()
	for _, t := range ended {
		t.end()
		p.e.retireTrack(t)
		if fn := p.cfg.OnTrackEnded; fn != nil {
			p.events.post(func() { fn(t) })
		}
	}
}

func contains(ts []*Track, t *Track) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
