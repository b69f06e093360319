package sfu

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// maxOutExtensions is how many RTP header extensions the send-side
// interceptors may add to one packet without the header's extension slice
// growing, i.e. without an allocation.
const maxOutExtensions = 4

// DownTrack sends one published Track to one subscriber. It implements
// webrtc.TrackLocal: pion binds it once the subscriber's answer names the
// SSRC and payload type to use. For a simulcast track it forwards one
// layer at a time and switches on a keyframe of the layer it wants,
// rewriting sequence numbers, timestamps and VP8 picture IDs so the
// subscriber sees one continuous stream.
type DownTrack struct {
	src *Track
	// binding is set by Bind and cleared by Unbind (pion's goroutines),
	// and read for every packet.
	binding atomic.Pointer[binding]
	stats   *counters
	// tap marks a recorder's down-track: what it gets is not forwarded
	// to a subscriber, so it counts in no forwarding figure.
	tap bool

	// target is the quality the subscriber asked for (QualityOff: none);
	// limit caps it when the subscriber's downlink cannot carry it.
	target atomic.Int32
	limit  atomic.Int32
	// switches counts layer changes, for metrics.
	switches *atomic.Uint64

	// mu guards m. It is held only to compute a packet's outgoing fields,
	// never across a write: the current layer's reader takes it for every
	// packet, another layer's reader only at a switch and the RTCP reader
	// only to answer a NACK, so it is almost never contended.
	mu sync.Mutex
	m  munger

	// Owned by the subscriber's RTCP reader, to answer NACKs: scratch
	// space, and when each recent sequence number was last resent.
	resentAt [resendMemory]resent
	rtxHdr   rtp.Header
	rtxPkt   rtp.Packet
	rtxBuf   [maxCachedPacket + 2]byte
	rtxExt   [maxOutExtensions]rtp.Extension
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
	writer  RTPWriter
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
}

var _ webrtc.TrackLocal = (*DownTrack)(nil)

func newDownTrack(src *Track, quality int, stats *counters, switches *atomic.Uint64) *DownTrack {
	d := &DownTrack{src: src, stats: stats, switches: switches}
	d.m.layer = QualityOff
	d.target.Store(int32(quality))
	d.limit.Store(QualityHigh)
	return d
}

// Bind picks the subscriber's payload type for the publisher's codec.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := matchCodec(d.src.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, ErrCodecNotNegotiated
	}
	b := &binding{ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType), writer: ctx.WriteStream()}
	if rtx, ok := rtxFor(codec.PayloadType, ctx.CodecParameters()); ok && ctx.SSRCRetransmission() != 0 {
		b.rtxSSRC, b.rtxPT = uint32(ctx.SSRCRetransmission()), uint8(rtx)
	}
	d.binding.Store(b)
	d.stats.tracksOut[kindIndex(d.src.kind)].Add(1)
	// A new subscriber can decode nothing until the next keyframe.
	d.src.RequestKeyframe(d.want())
	return codec, nil
}

// Unbind stops forwarding to the subscriber.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	if d.binding.Swap(nil) != nil {
		d.stats.tracksOut[kindIndex(d.src.kind)].Add(-1)
	}
	return nil
}

// ID is the subscriber-side MediaStreamTrack id: the source track's id.
func (d *DownTrack) ID() string { return d.src.id }

// RID is empty: a down-track is one stream, whatever layer feeds it.
func (d *DownTrack) RID() string { return "" }

// StreamID is the publisher's id, so a subscriber groups a student's
// tracks into one MediaStream.
func (d *DownTrack) StreamID() string { return d.src.streamID }

// Kind is the source track's kind.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.src.kind }

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

// forward offers one packet of layer l and reports whether it was
// written. It runs on l's reader; info is shared by all subscribers of
// the packet.
func (d *DownTrack) forward(l *layer, pkt *rtp.Packet, info *packetInfo) bool {
	b := d.binding.Load()
	if b == nil {
		return false
	}
	seq, ts, pic, tl0, ok := d.translate(l, pkt, info)
	if !ok {
		return false
	}
	out := &l.out
	*out = pkt.Header
	out.SSRC, out.PayloadType = b.ssrc, b.pt
	out.SequenceNumber, out.Timestamp = seq, ts
	out.Extension, out.ExtensionProfile = false, 0
	out.Extensions = l.extBuf[:0]
	payload := pkt.Payload
	if pic >= 0 || tl0 >= 0 {
		v, _ := d.src.vp8Fields(pkt.Payload, info)
		payload = rewriteVP8(v, pkt.Payload, l.payload[:], pic, tl0)
	}
	if _, err := b.writer.WriteRTP(out, payload); err != nil {
		if d.stats != nil {
			d.stats.writeErrors.Add(1)
		}
		return false
	}
	if !d.src.forwarded.Load() && d.src.forwarded.CompareAndSwap(false, true) && d.src.onFirstForward != nil {
		d.src.onFirstForward(d.src)
	}
	return true
}

// translate decides whether the packet is forwarded and computes its
// outgoing sequence number, timestamp and VP8 fields. It switches layers
// on a keyframe of a layer closer to the wanted one.
func (d *DownTrack) translate(l *layer, pkt *rtp.Packet, info *packetInfo) (seq uint16, ts uint32, pic, tl0 int32, ok bool) {
	want := d.want()
	d.mu.Lock()
	defer d.mu.Unlock()
	m := &d.m
	if want == QualityOff {
		m.layer = QualityOff
		return 0, 0, -1, -1, false
	}
	if l.index != m.layer {
		target := d.src.nearest(want)
		if m.layer != QualityOff && abs(l.index-target) >= abs(m.layer-target) {
			return 0, 0, -1, -1, false
		}
		// Video may only start or switch on a keyframe; audio frames
		// are each decodable.
		if d.src.kind == webrtc.RTPCodecTypeVideo && !d.src.isKeyframe(pkt.Payload, info) {
			return 0, 0, -1, -1, false
		}
		d.switchTo(l, pkt, info)
	}
	if int16(pkt.SequenceNumber-m.fromSeq) < 0 {
		return 0, 0, -1, -1, false // from before this layer's run began
	}
	seq = pkt.SequenceNumber + m.seqOffset
	ts = pkt.Timestamp + m.tsOffset
	pic, tl0 = -1, -1
	if vp8, isVP8 := d.src.vp8Fields(pkt.Payload, info); isVP8 {
		if vp8.picIDAt != 0 {
			p := (vp8.pictureID(pkt.Payload) + m.picOffset) & vp8.picIDMask()
			pic = int32(p)
			// Newer modulo the field's width: less than half the range ahead.
			if diff := (p - m.lastPic) & vp8.picIDMask(); !m.started || (diff != 0 && diff <= vp8.picIDMask()/2) {
				m.lastPic = p
			}
		}
		if vp8.tl0At != 0 {
			v := pkt.Payload[vp8.tl0At] + m.tl0Offset
			tl0 = int32(v)
			m.lastTL0 = v
		}
	}
	if int16(seq-m.lastSeq) > 0 || !m.started {
		m.lastSeq, m.lastTS = seq, ts
		m.lastAt = info.now
	}
	m.started = true
	return seq, ts, pic, tl0, true
}

// switchTo starts forwarding layer l at pkt, its keyframe, continuing the
// outgoing stream where the previous layer left it: the next sequence
// number, a timestamp advanced by the wall time since the last packet,
// and the next picture ID and TL0PICIDX.
func (d *DownTrack) switchTo(l *layer, pkt *rtp.Packet, info *packetInfo) {
	m := &d.m
	if m.layer != QualityOff {
		d.switches.Add(1)
	}
	m.layer, m.fromSeq = l.index, pkt.SequenceNumber
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
// (RFC 4588 §4). It runs on the subscriber's RTCP reader, which owns the
// rtx scratch fields.
func (d *DownTrack) resend(seq uint16) bool {
	b := d.binding.Load()
	if b == nil {
		return false
	}
	now := time.Now().UnixNano()
	r := &d.resentAt[seq%resendMemory]
	if r.at != 0 && r.seq == seq && now-r.at < int64(resendGap) {
		return false
	}
	d.mu.Lock()
	m := d.m
	var rtxSeq uint16
	if b.rtxSSRC != 0 {
		rtxSeq = d.m.rtxSeq
		d.m.rtxSeq++
	}
	d.mu.Unlock()
	if m.layer == QualityOff {
		return false
	}
	l := d.src.layers[m.layer].Load()
	in := seq - m.seqOffset
	if l == nil || l.cache == nil || int16(in-m.fromSeq) < 0 {
		return false
	}
	buf := d.rtxBuf[2:]
	n := l.cache.get(in, buf)
	if n == 0 || d.rtxPkt.Unmarshal(buf[:n]) != nil {
		return false
	}
	h := &d.rtxHdr
	*h = d.rtxPkt.Header
	h.Extension, h.ExtensionProfile, h.Extensions = false, 0, d.rtxExt[:0]
	h.Timestamp += m.tsOffset
	payload := d.rtxPkt.Payload
	if v := parseVP8(payload); d.src.mime == "video/vp8" && !v.malformed {
		if v.picIDAt != 0 {
			v.setPictureID(payload, (v.pictureID(payload)+m.picOffset)&v.picIDMask())
		}
		if v.tl0At != 0 {
			payload[v.tl0At] += m.tl0Offset
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
	if _, err := b.writer.WriteRTP(h, payload); err != nil {
		return false
	}
	r.seq, r.at = seq, now
	d.stats.retransmits.Add(1)
	return true
}

// rtxFor finds the RTX payload type whose apt= names pt.
func rtxFor(pt webrtc.PayloadType, codecs []webrtc.RTPCodecParameters) (webrtc.PayloadType, bool) {
	for _, c := range codecs {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && fmtpValue(c.SDPFmtpLine, "apt") == strconv.Itoa(int(pt)) {
			return c.PayloadType, true
		}
	}
	return 0, false
}

// matchCodec finds the subscriber's parameters for the publisher's codec:
// same MIME type and clock rate, and for H.264 the same profile and
// packetization mode, since the bitstream passes through untouched.
func matchCodec(want webrtc.RTPCodecParameters, offered []webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	for _, c := range offered {
		if !strings.EqualFold(c.MimeType, want.MimeType) || c.ClockRate != want.ClockRate {
			continue
		}
		if strings.EqualFold(want.MimeType, webrtc.MimeTypeH264) && !sameH264Stream(c.SDPFmtpLine, want.SDPFmtpLine) {
			continue
		}
		return c, true
	}
	return webrtc.RTPCodecParameters{}, false
}

// sameH264Stream reports whether two H.264 fmtp lines describe bitstreams a
// decoder for one can take from the other: the same profile_idc (the first
// byte of profile-level-id, RFC 6184 §8.1) and packetization-mode.
func sameH264Stream(a, b string) bool {
	pa, pb := fmtpValue(a, "profile-level-id"), fmtpValue(b, "profile-level-id")
	if len(pa) < 2 || len(pb) < 2 || pa[:2] != pb[:2] {
		return false
	}
	return fmtpValue(a, "packetization-mode") == fmtpValue(b, "packetization-mode")
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
