package sfu

import (
	"time"

	"github.com/pion/rtp"
)

// abs-send-time (webrtc.org's "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"):
// a 24-bit send time in seconds, 6.18 fixed point, wrapping every 64 s.
// The node stamps it on every packet it sends a subscriber that
// negotiated it, so the subscriber's browser runs its delay-based
// receive-side estimator over the node's real send times and reports the
// result as REMB, which the allocator (allocate.go) spends.

// absSendTime is the 6.18 fixed-point send time of unix nanos now.
func absSendTime(now int64) uint32 {
	secs := uint64(now) / uint64(time.Second)
	frac := uint64(now) % uint64(time.Second)
	return uint32((secs&63)<<18 | frac<<18/uint64(time.Second))
}

// putAbsSendTime writes the extension's three bytes for now into b.
func putAbsSendTime(b *[3]byte, now int64) {
	v := absSendTime(now)
	b[0], b[1], b[2] = byte(v>>16), byte(v>>8), byte(v)
}

// stampAbsSendTime adds the extension (one-byte header form, RFC 8285
// §4.2) to h, which carries no other: its Extensions slice has room for
// it (a layer's extBuf, a down-track's retransmission header), so
// nothing is allocated.
func stampAbsSendTime(h *rtp.Header, id uint8, v []byte) {
	_ = h.SetExtension(id, v) // only an id outside 1–14 fails, and negotiation never picks one
}
