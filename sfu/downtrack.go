package sfu

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// maxOutExtensions is the capacity of the outgoing header's extension
// array: the node sends abs-send-time alone today, and room for a few
// keeps a later one from allocating.
const maxOutExtensions = 4

// DownTrack sends one published Track to one subscriber (or, as a tap, to
// a recorder). For a simulcast track it forwards one layer at a time and
// switches on a keyframe of the layer it wants, rewriting sequence
// numbers, timestamps and VP8 picture IDs so the subscriber sees one
// continuous stream.
type DownTrack struct {
	src *Track
	sub *Peer // the subscriber; nil for a tap
	out sink  // where packets go: sub, or a tap's writer
	// binding is what negotiation fixed (SSRC, payload types); nil until
	// the subscriber's description accepts the track. Read per packet.
	binding atomic.Pointer[binding]
	stats   *counters
	// tap marks a recorder's down-track: what it gets is not forwarded
	// to a subscriber, so it counts in no forwarding figure.
	tap bool

	// target is the quality the subscriber asked for (QualityOff: none);
	// limit caps it when the subscriber's downlink cannot carry it.
	target atomic.Int32
	limit  atomic.Int32
	// tidTarget is the highest VP8 temporal layer to forward (maxTID:
	// all), set by the allocator; applied at a base-layer frame start.
	tidTarget atomic.Int32

	// mu guards m. It is held only to compute a packet's outgoing fields,
	// never across a write: the current layer's reader takes it for every
	// packet, another layer's reader only at a switch, the subscriber's
	// reader to answer a NACK and the clock for a sender report.
	mu   sync.Mutex
	m    munger
	seqs *seqMap // video only: outgoing ↔ incoming sequence numbers

	// Sent on the binding's SSRC, for sender reports (RFC 3550 §6.4.1);
	// written by the source's reader only.
	sentPackets atomic.Uint32
	sentOctets  atomic.Uint32
	// rate is the bitrate sent over the last report interval, set by the
	// clock (which owns rateOctets).
	rate       atomic.Uint64
	rateOctets uint32

	// Owned by the subscriber's reader, to answer NACKs and read its
	// reports: scratch space, and when each recent sequence number was
	// last resent.
	meter    reportMeter
	resentAt [resendMemory]resent
	rtxPkt   rtp.Packet
	rtxBuf   [maxCachedPacket + 2]byte
	rtxAbs   [3]byte
}

// Resend limits. A subscriber repeats a NACK until the packet arrives; a
// retransmission already on its way must not be sent again for every
// repeat, or a lossy (or hostile) receiver multiplies its own traffic.
const (
	resendMemory = 128                   // recent sequence numbers remembered
	resendGap    = 80 * time.Millisecond // least time between two resends of one packet
)

type resent struct {
	seq uint16
	at  int64 // unix nanos; 0: never
}

// binding is what one negotiation fixed for a down-track.
type binding struct {
	ssrc    uint32
	pt      uint8
	rtxSSRC uint32 // 0: no RTX (RFC 4588) negotiated; resend on ssrc
	rtxPT   uint8
	abs     uint8 // abs-send-time's extension id; 0: not negotiated
}

// munger maps one layer's incoming sequence numbers, timestamps and VP8
// picture IDs onto the continuous outgoing stream.
type munger struct {
	layer     int    // layer forwarded now, QualityOff before the first
	started   bool   // some packet has been sent
	fromSeq   uint16 // first incoming seq of this layer's run: older ones are dropped
	seqOffset uint16
	tsOffset  uint32
	picOffset uint16
	tl0Offset uint8
	lastSeq   uint16 // highest outgoing seq sent
	lastTS    uint32
	lastPic   uint16
	lastTL0   uint8
	lastAt    int64 // unix nanos of the last packet sent
	rtxSeq    uint16
	// Temporal layers (temporal.go): the TID limit applied now, the
	// highest incoming seq of the run, and the incoming picture ID of the
	// frame being dropped (-1: none).
	tid     int
	lastIn  uint16
	dropPic int32
	// waitKey: a packet was refused by the subscriber's backlog (or a
	// tap's queue), so nothing more goes out until the layer's next
	// keyframe, entered as a switch is: the stream continues with no gap
	// the decoder would stall on.
	waitKey bool
}

// sink is where a down-track's packets go: a subscriber's session (which
// encrypts and queues them), or a tap's writer. writeRTPFrame is for a
// payload at raw[off:] after bytes it may overwrite with the header.
type sink interface {
	writeRTP(s *sender, h *rtp.Header, payload []byte, class sendClass) bool
	writeRTPFrame(s *sender, h *rtp.Header, raw []byte, off int, class sendClass) bool
}

// tapSink adapts a recorder's writer.
type tapSink struct{ w RTPWriter }

func (t tapSink) writeRTP(_ *sender, h *rtp.Header, payload []byte, _ sendClass) bool {
	_, err := t.w.WriteRTP(h, payload)
	return err == nil
}

func (t tapSink) writeRTPFrame(s *sender, h *rtp.Header, raw []byte, off int, class sendClass) bool {
	return t.writeRTP(s, h, raw[off:], class)
}

func newDownTrack(src *Track, sub *Peer, quality int) *DownTrack {
	d := &DownTrack{src: src, sub: sub, stats: src.stats}
	if sub != nil {
		d.out = sub
	}
	d.m.layer = QualityOff
	d.m.tid, d.m.dropPic = maxTID, -1
	d.tidTarget.Store(maxTID)
	if src.kind == KindVideo {
		d.seqs = new(seqMap)
	}
	d.target.Store(int32(quality))
	d.limit.Store(QualityHigh)
	d.meter.clockRate = src.codec.ClockRate
	return d
}

// bind starts forwarding on what the subscriber's description accepted.
// A new binding asks for a keyframe: the subscriber decodes nothing before
// one. The caller holds p.mu.
func (d *DownTrack) bind(b *binding, p *Peer) {
	old := d.binding.Swap(b)
	if old == nil {
		d.stats.tracksOut[kindIndex(d.src.kind)].Add(1)
		d.src.RequestKeyframe(d.want())
	}
	if old == nil || *old != *b {
		p.indexSendsLocked()
	}
}

// unbind stops forwarding to the subscriber. The caller holds the
// subscriber's mu.
func (d *DownTrack) unbind() {
	if d.binding.Swap(nil) != nil {
		d.stats.tracksOut[kindIndex(d.src.kind)].Add(-1)
		if d.sub != nil {
			d.sub.indexSendsLocked()
		}
	}
}

// ID is the subscriber-side MediaStreamTrack id: the source track's id.
func (d *DownTrack) ID() string { return d.src.id }

// StreamID is the publisher's id, so a subscriber groups a student's
// tracks into one MediaStream.
func (d *DownTrack) StreamID() string { return d.src.streamID }

// Kind is the source track's kind.
func (d *DownTrack) Kind() Kind { return d.src.kind }

// Source is the published track this down-track forwards.
func (d *DownTrack) Source() *Track { return d.src }

// want is the quality to forward: the target, capped by the limit.
func (d *DownTrack) want() int {
	t := int(d.target.Load())
	if t == QualityOff {
		return QualityOff
	}
	return min(t, int(d.limit.Load()))
}

// Layer is the layer forwarded now, QualityOff if none.
func (d *DownTrack) Layer() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m.layer
}

// setTarget changes the wanted quality and asks for a keyframe on it.
func (d *DownTrack) setTarget(q int) {
	if int(d.target.Swap(int32(q))) == q {
		return
	}
	d.retarget()
}

// setLimit caps the quality for congestion; QualityHigh lifts the cap.
func (d *DownTrack) setLimit(q int) {
	if int(d.limit.Swap(int32(q))) == q {
		return
	}
	d.retarget()
}

func (d *DownTrack) retarget() {
	d.src.updateDemand()
	if w := d.want(); w != QualityOff && d.src.nearest(w) != d.Layer() {
		d.src.RequestKeyframe(w)
	}
}

// forward offers one packet of layer l (raw is its bytes, which it may
// overwrite before the payload) and reports whether it was written. It
// runs on l's reader; info is shared by all subscribers of the packet.
func (d *DownTrack) forward(s *sender, l *layer, pkt *rtp.Packet, raw []byte, info *packetInfo) bool {
	b := d.binding.Load()
	if b == nil {
		return false
	}
	seq, ts, pic, tl0, verdict := d.translate(l, pkt, info)
	if verdict == verdictDrop {
		return false
	}
	out := &l.out
	*out = pkt.Header
	out.SSRC, out.PayloadType = b.ssrc, b.pt
	out.SequenceNumber, out.Timestamp = seq, ts
	out.Extension, out.ExtensionProfile = false, 0
	out.Extensions = l.extBuf[:0]
	if b.abs != 0 {
		putAbsSendTime(&l.absBuf, info.now)
		stampAbsSendTime(out, b.abs, l.absBuf[:])
	}
	out.Padding, out.PaddingSize = false, 0
	payload := pkt.Payload
	if verdict == verdictPad {
		out.Padding, out.Marker = true, false
		return d.out.writeRTP(s, out, paddingPayload(l.payload[:]), classVideo)
	}
	if pic >= 0 || tl0 >= 0 {
		v, _ := d.src.vp8Fields(pkt.Payload, info)
		payload = rewriteVP8(v, pkt.Payload, l.payload[:], pic, tl0)
	}
	class := classAudio
	if d.src.kind == KindVideo {
		class = classVideo
	}
	var sent bool
	if len(payload) > 0 && len(raw) >= len(payload) && &payload[0] == &raw[len(raw)-len(payload)] {
		sent = d.out.writeRTPFrame(s, out, raw, len(raw)-len(payload), class)
	} else {
		sent = d.out.writeRTP(s, out, payload, class)
	}
	if !sent {
		if d.src.kind == KindVideo {
			d.waitForKeyframe(l, seq)
		}
		return false
	}
	d.sentPackets.Store(d.sentPackets.Load() + 1)
	d.sentOctets.Store(d.sentOctets.Load() + uint32(len(payload)))
	if !d.src.forwarded.Load() && d.src.forwarded.CompareAndSwap(false, true) && d.src.onFirstForward != nil {
		fn, t := d.src.onFirstForward, d.src
		t.pub.events.post(func() { fn(t) })
	}
	return true
}

// waitForKeyframe drops the rest of the picture after the packet (sent
// as seq) the subscriber's backlog (or a tap's queue) refused, and asks
// for the next keyframe: a partial frame would only make the decoder
// stall. The refused packet's number is given back, so the keyframe
// continues the stream without a gap to NACK.
func (d *DownTrack) waitForKeyframe(l *layer, seq uint16) {
	d.mu.Lock()
	first := !d.m.waitKey
	d.m.waitKey = true
	if d.m.lastSeq == seq {
		d.m.lastSeq--
	}
	d.mu.Unlock()
	if first {
		d.src.requestLayerKeyframe(l)
	}
}

// What translate decides for a packet.
const (
	verdictDrop = iota
	verdictSend
	// verdictPad: send padding in the packet's place (a late packet of a
	// temporal layer the subscriber is not sent).
	verdictPad
)

// translate decides whether the packet is forwarded and computes its
// outgoing sequence number, timestamp and VP8 fields. It switches layers
// on a keyframe of a layer closer to the wanted one, and drops frames of
// temporal layers above the target (temporal.go).
func (d *DownTrack) translate(l *layer, pkt *rtp.Packet, info *packetInfo) (seq uint16, ts uint32, pic, tl0 int32, verdict int) {
	want := d.want()
	d.mu.Lock()
	defer d.mu.Unlock()
	m := &d.m
	if want == QualityOff {
		m.layer = QualityOff
		return 0, 0, -1, -1, verdictDrop
	}
	if m.waitKey && l.index == m.layer {
		if !d.src.isKeyframe(pkt.Payload, info) {
			return 0, 0, -1, -1, verdictDrop
		}
		d.switchTo(l, pkt, info) // re-anchored: the stream continues seamlessly
	}
	if l.index != m.layer {
		target := d.src.nearest(want)
		if m.layer != QualityOff && abs(l.index-target) >= abs(m.layer-target) {
			return 0, 0, -1, -1, verdictDrop
		}
		// Video may only start or switch on a keyframe; audio frames
		// are each decodable.
		if d.src.kind == KindVideo && !d.src.isKeyframe(pkt.Payload, info) {
			return 0, 0, -1, -1, verdictDrop
		}
		d.switchTo(l, pkt, info)
	}
	switch since := int16(pkt.SequenceNumber - m.fromSeq); {
	case since < 0:
		return 0, 0, -1, -1, verdictDrop // from before this layer's run began
	case since > runReach:
		// Keep the run's start within reach: compared modulo 2^16, a
		// start 2^15 packets back (four minutes of a 1 Mb/s layer)
		// would look ahead, and the run would stop.
		m.fromSeq = pkt.SequenceNumber - runReach
	}
	in := pkt.SequenceNumber
	vp8, isVP8 := d.src.vp8Fields(pkt.Payload, info)
	tid := 0
	if isVP8 {
		tid = vp8.tid(pkt.Payload)
		if tid == 0 && vp8.start {
			m.tid = int(d.tidTarget.Load())
		}
	}
	tsOffset, picOffset, tl0Offset := m.tsOffset, m.picOffset, m.tl0Offset
	if d.seqs == nil {
		seq = in + m.seqOffset
	} else if int16(in-m.lastIn) > 0 {
		// In order, perhaps after a gap: the missing packets keep their
		// numbers, for when they arrive late (a retransmission).
		gap := in - m.lastIn - 1
		for s := in - min(gap, seqMapSize); s != in; s++ {
			d.seqs.record(s+m.seqOffset, s, seqForwarded, m)
		}
		m.lastIn = in
		if tid > m.tid {
			m.seqOffset--
			if isVP8 && vp8.picIDAt != 0 {
				if p := int32(vp8.pictureID(pkt.Payload)); p != m.dropPic {
					m.dropPic = p
					m.picOffset--
				}
			}
			if !d.tap {
				d.stats.temporalDrops.Add(1)
			}
			return 0, 0, -1, -1, verdictDrop
		}
		seq = in + m.seqOffset
		d.seqs.record(seq, in, seqForwarded, m)
	} else {
		e, ok := d.seqs.forIn(in, l.index)
		if !ok {
			return 0, 0, -1, -1, verdictDrop // older than the map remembers
		}
		seq, tsOffset, picOffset, tl0Offset = e.out, e.tsOffset, e.picOffset, e.tl0Offset
		if tid > m.tid {
			e.state = seqPadding
			return seq, pkt.Timestamp + tsOffset, -1, -1, verdictPad
		}
	}
	ts = pkt.Timestamp + tsOffset
	pic, tl0 = -1, -1
	if isVP8 {
		if vp8.picIDAt != 0 {
			p := (vp8.pictureID(pkt.Payload) + picOffset) & vp8.picIDMask()
			pic = int32(p)
			// Newer modulo the field's width: less than half the range ahead.
			if diff := (p - m.lastPic) & vp8.picIDMask(); !m.started || (diff != 0 && diff <= vp8.picIDMask()/2) {
				m.lastPic = p
			}
		}
		if vp8.tl0At != 0 {
			v := pkt.Payload[vp8.tl0At] + tl0Offset
			tl0 = int32(v)
			m.lastTL0 = v
		}
	}
	if int16(seq-m.lastSeq) > 0 || !m.started {
		m.lastSeq, m.lastTS = seq, ts
		m.lastAt = info.now
	}
	m.started = true
	return seq, ts, pic, tl0, verdictSend
}

// runReach is how far behind the newest packet of a run a packet may be
// and still be forwarded (later than the run's start, but reordered).
const runReach = 1 << 12

// switchTo starts forwarding layer l at pkt, its keyframe, continuing the
// outgoing stream where the previous layer left it: the next sequence
// number, a timestamp advanced by the wall time since the last packet,
// and the next picture ID and TL0PICIDX.
func (d *DownTrack) switchTo(l *layer, pkt *rtp.Packet, info *packetInfo) {
	m := &d.m
	if m.layer != QualityOff && m.layer != l.index && !d.tap {
		d.stats.layerSwitches.Add(1)
	}
	m.layer, m.fromSeq = l.index, pkt.SequenceNumber
	m.lastIn, m.dropPic = pkt.SequenceNumber-1, -1
	m.waitKey = false
	if !m.started {
		return // the first layer passes through unchanged
	}
	m.seqOffset = m.lastSeq + 1 - pkt.SequenceNumber
	elapsed := info.now - m.lastAt
	ticks := uint32(uint64(max(elapsed, 0)) * uint64(d.src.codec.ClockRate) / uint64(time.Second))
	m.tsOffset = m.lastTS + max(ticks, 1) - pkt.Timestamp
	if vp8, ok := d.src.vp8Fields(pkt.Payload, info); ok {
		if vp8.picIDAt != 0 {
			m.picOffset = (m.lastPic + 1 - vp8.pictureID(pkt.Payload)) & vp8.picIDMask()
		}
		if vp8.tl0At != 0 {
			m.tl0Offset = m.lastTL0 + 1 - pkt.Payload[vp8.tl0At]
		}
	}
}

// rewriteVP8 returns payload with the VP8 picture ID and TL0PICIDX
// replaced, in scratch, or payload itself when nothing changes (always,
// for a subscriber that never switched, so most packets are not copied).
func rewriteVP8(v vp8Descriptor, payload, scratch []byte, pic, tl0 int32) []byte {
	same := (pic < 0 || v.picIDAt == 0 || uint16(pic) == v.pictureID(payload)) &&
		(tl0 < 0 || v.tl0At == 0 || byte(tl0) == payload[v.tl0At])
	if same || len(payload) > len(scratch) {
		return payload
	}
	out := scratch[:len(payload)]
	copy(out, payload)
	if pic >= 0 && v.picIDAt != 0 {
		v.setPictureID(out, uint16(pic))
	}
	if tl0 >= 0 && v.tl0At != 0 {
		out[v.tl0At] = byte(tl0)
	}
	return out
}

// resend answers a subscriber's NACK for outgoing sequence number seq
// from the current layer's cache, on the RTX stream when negotiated
// (RFC 4588 §4). It runs on the subscriber's reader, which owns the rtx
// scratch fields, and queues on s.
func (d *DownTrack) resend(s *sender, seq uint16, now int64) bool {
	b := d.binding.Load()
	if b == nil || d.tap {
		return false
	}
	r := &d.resentAt[seq%resendMemory]
	if r.at != 0 && r.seq == seq && now-r.at < int64(resendGap) {
		return false
	}
	d.mu.Lock()
	m := d.m
	var e seqEntry
	var mapped bool
	if d.seqs != nil {
		e, mapped = d.seqs.forOut(seq)
	}
	var rtxSeq uint16
	if b.rtxSSRC != 0 {
		rtxSeq = d.m.rtxSeq
		d.m.rtxSeq++
	}
	d.mu.Unlock()
	if !mapped {
		return false
	}
	if e.state == seqPadding {
		// The number carried padding: so does its retransmission.
		h := &d.rtxPkt.Header
		*h = rtp.Header{Version: 2, Padding: true, SSRC: b.ssrc, PayloadType: b.pt, SequenceNumber: seq,
			Timestamp: m.lastTS, Extensions: h.Extensions[:0]}
		if !d.out.writeRTP(s, h, paddingPayload(d.rtxBuf[:]), classVideo) {
			return false
		}
		r.seq, r.at = seq, now
		return true
	}
	if e.layer < 0 || int(e.layer) >= maxLayers {
		return false
	}
	l := d.src.layers[e.layer].Load()
	if l == nil || l.cache == nil {
		return false
	}
	buf := d.rtxBuf[2:]
	n := l.cache.get(e.in, buf)
	if n == 0 || d.rtxPkt.Unmarshal(buf[:n]) != nil {
		return false
	}
	h := &d.rtxPkt.Header
	h.Extension, h.ExtensionProfile, h.Extensions = false, 0, h.Extensions[:0]
	if b.abs != 0 {
		putAbsSendTime(&d.rtxAbs, now)
		stampAbsSendTime(h, b.abs, d.rtxAbs[:])
	}
	h.Padding, h.PaddingSize = false, 0
	h.Timestamp += e.tsOffset
	payload := d.rtxPkt.Payload
	if v := parseVP8(payload); d.src.mime == "video/vp8" && !v.malformed {
		if v.picIDAt != 0 {
			v.setPictureID(payload, (v.pictureID(payload)+e.picOffset)&v.picIDMask())
		}
		if v.tl0At != 0 {
			payload[v.tl0At] += e.tl0Offset
		}
	}
	if b.rtxSSRC == 0 {
		h.SSRC, h.PayloadType, h.SequenceNumber = b.ssrc, b.pt, seq
	} else {
		// RTX payload: the original sequence number, then the payload.
		// The payload sits right after the header in buf, so move it up
		// to make room for the two bytes in front.
		rtx := d.rtxBuf[:len(payload)+2]
		copy(rtx[2:], payload)
		rtx[0], rtx[1] = byte(seq>>8), byte(seq)
		h.SSRC, h.PayloadType, h.SequenceNumber = b.rtxSSRC, b.rtxPT, rtxSeq
		payload = rtx
	}
	if !d.out.writeRTP(s, h, payload, classVideo) {
		return false
	}
	r.seq, r.at = seq, now
	d.stats.retransmits.Add(1)
	return true
}
