package loadtest

import (
	"encoding/binary"
	"slices"
	"time"
)

// The lean client's RTCP (RFC 3550 §6, RFC 4585 §6), written and read by
// hand into and from reused buffers: sender reports from students,
// receiver reports and generic NACKs from proctors; students read NACK,
// PLI and FIR, proctors read sender reports (for LSR, RFC 3550 §6.4.1).

// RTCP packet types and feedback formats.
const (
	rtcpSR       = 200
	rtcpRR       = 201
	rtcpRTPFB    = 205
	rtcpPSFB     = 206
	fmtNACK      = 1 // RTPFB generic NACK (RFC 4585 §6.2.1)
	fmtPLI       = 1 // PSFB picture loss (RFC 4585 §6.3.1)
	fmtFIR       = 4 // PSFB full intra request (RFC 5104 §4.3.1)
	maxRRBlocks  = 31
	rrBlockBytes = 24
)

// ntpEpochOffset is 1900-01-01 to 1970-01-01 in seconds (RFC 5905).
const ntpEpochOffset = 2_208_988_800

// ntpTime is t as a 64-bit NTP timestamp.
func ntpTime(t time.Time) uint64 {
	s := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return s<<32 | frac
}

func rtcpHeader(b []byte, count, pt int, words int) {
	b[0] = 0x80 | byte(count)
	b[1] = byte(pt)
	binary.BigEndian.PutUint16(b[2:], uint16(words-1))
}

// appendSR appends a sender report without report blocks.
func appendSR(b []byte, ssrc uint32, ntp uint64, ts, packets, octets uint32) []byte {
	b = slices.Grow(b, 28)
	p := b[len(b) : len(b)+28]
	rtcpHeader(p, 0, rtcpSR, 7)
	binary.BigEndian.PutUint32(p[4:], ssrc)
	binary.BigEndian.PutUint64(p[8:], ntp)
	binary.BigEndian.PutUint32(p[16:], ts)
	binary.BigEndian.PutUint32(p[20:], packets)
	binary.BigEndian.PutUint32(p[24:], octets)
	return b[:len(b)+28]
}

// reportBlock is one RR report block (RFC 3550 §6.4.1).
type reportBlock struct {
	ssrc         uint32
	fractionLost uint8
	lost         uint32 // cumulative, 24 bits
	highest      uint32 // extended highest sequence number
	lsr, dlsr    uint32
}

// appendRR appends a receiver report of up to maxRRBlocks blocks.
func appendRR(b []byte, sender uint32, blocks []reportBlock) []byte {
	n := min(len(blocks), maxRRBlocks)
	size := 8 + n*rrBlockBytes
	b = slices.Grow(b, size)
	p := b[len(b) : len(b)+size]
	rtcpHeader(p, n, rtcpRR, size/4)
	binary.BigEndian.PutUint32(p[4:], sender)
	for i, rb := range blocks[:n] {
		q := p[8+i*rrBlockBytes:]
		binary.BigEndian.PutUint32(q, rb.ssrc)
		binary.BigEndian.PutUint32(q[4:], uint32(rb.fractionLost)<<24|rb.lost&0xFFFFFF)
		binary.BigEndian.PutUint32(q[8:], rb.highest)
		binary.BigEndian.PutUint32(q[12:], 0) // jitter: not measured
		binary.BigEndian.PutUint32(q[16:], rb.lsr)
		binary.BigEndian.PutUint32(q[20:], rb.dlsr)
	}
	return b[:len(b)+size]
}

// appendNACK appends a generic NACK for the sequence numbers from first
// to last (at most 17 per FCI; up to maxNACKItems FCIs).
func appendNACK(b []byte, sender, media uint32, first, last uint16) []byte {
	var fci [maxNACKItems][4]byte
	n := 0
	count := int(last-first) + 1
	for off := 0; off < count && n < maxNACKItems; off += 17 {
		var blp uint16
		for i := 1; i <= 16 && off+i < count; i++ {
			blp |= 1 << (i - 1)
		}
		binary.BigEndian.PutUint16(fci[n][:], first+uint16(off))
		binary.BigEndian.PutUint16(fci[n][2:], blp)
		n++
	}
	size := 12 + 4*n
	b = slices.Grow(b, size)
	p := b[len(b) : len(b)+size]
	rtcpHeader(p, fmtNACK, rtcpRTPFB, size/4)
	binary.BigEndian.PutUint32(p[4:], sender)
	binary.BigEndian.PutUint32(p[8:], media)
	for i := range n {
		copy(p[12+4*i:], fci[i][:])
	}
	return b[:len(b)+size]
}

// maxNACKItems bounds one NACK: 4 FCIs are 68 packets, more than a
// loopback gap worth repairing.
const maxNACKItems = 4
