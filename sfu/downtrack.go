package sfu

import (
	"strings"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// maxOutExtensions is how many RTP header extensions the send-side
// interceptors may add to one packet (transport-wide CC today) without the
// header's extension slice growing, i.e. without an allocation.
const maxOutExtensions = 4

// DownTrack sends one published Track to one subscriber. It implements
// webrtc.TrackLocal: pion binds it once the subscriber's answer names the
// SSRC and payload type to use.
type DownTrack struct {
	src *Track
	// binding is set by Bind and cleared by Unbind (pion's goroutines),
	// and read by src's reader for every packet.
	binding atomic.Pointer[binding]
	stats   *counters

	// Owned by src's reader goroutine: the outgoing header and the
	// backing array its extensions are built in.
	out    rtp.Header
	extBuf [maxOutExtensions]rtp.Extension
}

// binding is what one negotiation fixed for a down-track.
type binding struct {
	ssrc   uint32
	pt     uint8
	writer webrtc.TrackLocalWriter
}

var _ webrtc.TrackLocal = (*DownTrack)(nil)

func newDownTrack(src *Track, stats *counters) *DownTrack {
	return &DownTrack{src: src, stats: stats}
}

// Bind picks the subscriber's payload type for the publisher's codec.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := matchCodec(d.src.codec, ctx.CodecParameters())
	if !ok {
		return webrtc.RTPCodecParameters{}, ErrCodecNotNegotiated
	}
	d.binding.Store(&binding{ssrc: uint32(ctx.SSRC()), pt: uint8(codec.PayloadType), writer: ctx.WriteStream()})
	d.stats.tracksOut[kindIndex(d.src.kind)].Add(1)
	// A new subscriber can decode nothing until the next keyframe.
	d.src.RequestKeyframe()
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

// writeRTP forwards pkt with the subscriber's SSRC and payload type. The
// publisher's header extensions are dropped: their ids were negotiated with
// the publisher, not with this subscriber. Runs on src's reader only.
func (d *DownTrack) writeRTP(pkt *rtp.Packet, size int) {
	b := d.binding.Load()
	if b == nil {
		return
	}
	d.out = pkt.Header
	d.out.SSRC = b.ssrc
	d.out.PayloadType = b.pt
	d.out.Extension = false
	d.out.ExtensionProfile = 0
	d.out.Extensions = d.extBuf[:0]
	if _, err := b.writer.WriteRTP(&d.out, pkt.Payload); err != nil {
		d.stats.writeErrors.Add(1)
		return
	}
	d.stats.packetsOut.Add(1)
	d.stats.bytesOut.Add(uint64(size))
	if !d.src.forwarded {
		d.src.forwarded = true
		if d.src.onFirstForward != nil {
			d.src.onFirstForward(d.src)
		}
	}
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
