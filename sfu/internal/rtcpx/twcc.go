package rtcpx

import "encoding/binary"

// Transport-wide congestion control feedback
// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1): after the
// common feedback header come the base sequence number, the packet status
// count, a 24-bit reference time in multiples of 64 ms and an 8-bit
// feedback packet count; then 16-bit packet status chunks, each either a
// run of one status (§3.1.3) or a vector of 14 one-bit or 7 two-bit
// statuses (§3.1.4); then a receive delta, in multiples of 250 µs, for
// every packet received (§3.1.5): one octet, unsigned, for a "small delta"
// status, two octets, signed, for a "large or negative delta"; then zero
// padding to a 32-bit boundary.

// TWCC packet status symbols (§3.1.1).
const (
	twccNotReceived = 0
	twccSmallDelta  = 1
	twccLargeDelta  = 2
	twccReserved    = 3
)

// twccFixedLen is the part of a TWCC feedback payload before the chunks:
// sender and media SSRC, base sequence number, status count, reference
// time and feedback packet count.
const twccFixedLen = 16

// TWCCDeltaMicros is the unit of a TWCC receive delta, in microseconds
// (§3.1.5).
const TWCCDeltaMicros = 250

// TWCCRefTimeMicros is the unit of a TWCC reference time, in microseconds
// (§3.1).
const TWCCRefTimeMicros = 64000

// TWCC is a parsed transport-wide congestion control feedback packet. Its
// chunks and deltas were checked by ParseTWCC, so Visit cannot fail.
type TWCC struct {
	SenderSSRC    uint32
	MediaSSRC     uint32
	BaseSeq       uint16 // transport-wide sequence number of the first status
	StatusCount   uint16 // number of packets with a status, from BaseSeq on
	RefTime       uint32 // 24 bits, in multiples of 64 ms, on the receiver's clock (it wraps)
	FeedbackCount uint8  // counts the receiver's feedback packets, so the sender can tell one was lost

	chunks []byte // the status chunks, a whole number of them
	deltas []byte // the receive deltas, exactly as many octets as the statuses need
}

// ParseTWCC parses the transport-wide CC feedback at the start of p and
// checks that its chunks cover StatusCount packets, that no status is the
// reserved symbol, and that the packet holds every receive delta they need.
func ParseTWCC(p []byte) (TWCC, error) {
	_, b, err := payload(p, TypeRTPFB, FmtTWCC)
	if err != nil {
		return TWCC{}, err
	}
	if len(b) < twccFixedLen {
		return TWCC{}, ErrTruncated
	}
	t := TWCC{
		SenderSSRC:    binary.BigEndian.Uint32(b),
		MediaSSRC:     binary.BigEndian.Uint32(b[4:]),
		BaseSeq:       binary.BigEndian.Uint16(b[8:]),
		StatusCount:   binary.BigEndian.Uint16(b[10:]),
		RefTime:       binary.BigEndian.Uint32(b[12:]) >> 8,
		FeedbackCount: b[15],
	}
	rest := b[twccFixedLen:]
	deltaLen, reserved := 0, false
	n, ok := walkChunks(rest, int(t.StatusCount), func(sym uint8) {
		switch sym {
		case twccSmallDelta:
			deltaLen++
		case twccLargeDelta:
			deltaLen += 2
		case twccReserved:
			reserved = true
		}
	})
	switch {
	case !ok:
		return TWCC{}, ErrTruncated
	case reserved:
		return TWCC{}, ErrMalformed
	case len(rest) < n+deltaLen:
		return TWCC{}, ErrTruncated
	}
	t.chunks, t.deltas = rest[:n], rest[n:n+deltaLen]
	return t, nil
}

// Visit calls fn for each of the StatusCount packets in order, with its
// transport-wide sequence number, whether it was received, and if so its
// receive delta in multiples of 250 µs: from the reference time for the
// first packet received, from the previous packet received for the others.
// A delta may be negative when packets arrived out of order.
func (t TWCC) Visit(fn func(seq uint16, received bool, delta int)) {
	seq, d := t.BaseSeq, 0
	walkChunks(t.chunks, int(t.StatusCount), func(sym uint8) {
		switch sym {
		case twccSmallDelta:
			fn(seq, true, int(t.deltas[d]))
			d++
		case twccLargeDelta:
			fn(seq, true, int(int16(binary.BigEndian.Uint16(t.deltas[d:]))))
			d += 2
		default:
			fn(seq, false, 0)
		}
		seq++
	})
}

// walkChunks calls fn with the status symbol of each of the first count
// packets that the chunks at the start of b describe, and returns the
// number of octets those chunks take. It reports false if b ends first.
func walkChunks(b []byte, count int, fn func(sym uint8)) (int, bool) {
	off := 0
	for count > 0 {
		if off+2 > len(b) {
			return off, false
		}
		c := binary.BigEndian.Uint16(b[off:])
		off += 2
		switch {
		case c&0x8000 == 0: // run length chunk (§3.1.3)
			sym := uint8(c>>13) & 3
			for range min(int(c&0x1fff), count) {
				fn(sym)
				count--
			}
		case c&0x4000 == 0: // status vector chunk, 14 one-bit symbols (§3.1.4)
			for i := 13; i >= 0 && count > 0; i-- {
				fn(uint8(c>>i) & 1)
				count--
			}
		default: // status vector chunk, 7 two-bit symbols
			for i := 12; i >= 0 && count > 0; i -= 2 {
				fn(uint8(c>>i) & 3)
				count--
			}
		}
	}
	return off, true
}
