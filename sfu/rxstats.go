package sfu

import (
	"time"
)

// Reception statistics of one stream the client sends (RFC 3550 §6.4.1,
// Appendix A.1, A.3 and A.8), for the receiver reports the node sends it,
// and the list of its missing packets, for the NACKs (RFC 4585 §6.2.1).

// rxStats are one SSRC's reception statistics.
type rxStats struct {
	started       bool
	baseSeq       uint32
	maxSeq        uint16
	cycles        uint32 // sequence number wraps, shifted left by 16
	count         uint32 // packets received
	expectedPrior uint32
	receivedPrior uint32
	transit       int64  // of the last packet, in RTP clock units
	t0            int64  // the first arrival (unix nanos): arrival times count from it
	jitter        uint32 // interarrival jitter × 16 (A.8's fixed point)
	lastSR        uint32 // middle 32 bits of the NTP time of the last SR
	lastSRAt      int64  // when it arrived (unix nanos)
}

// received counts one packet (RFC 3550 A.1 without probation: the SSRC
// was authenticated by SRTP and placed by the SDP).
func (s *rxStats) received(seq uint16, ts uint32, at int64, clockRate uint32) {
	if !s.started {
		s.started = true
		s.baseSeq, s.maxSeq = uint32(seq), seq
		s.count = 1
		s.t0 = at
		s.transit = -int64(ts)
		return
	}
	s.count++
	switch delta := seq - s.maxSeq; {
	case delta == 0:
	case delta < 1<<15: // in order, maybe with a gap
		if seq < s.maxSeq {
			s.cycles += 1 << 16
		}
		s.maxSeq = seq
	}
	if clockRate == 0 {
		return
	}
	// A.8: J += (|D| - J)/16, kept ×16 so the division is a shift.
	transit := arrivalUnits(at-s.t0, clockRate) - int64(ts)
	d := transit - s.transit
	s.transit = transit
	if d < 0 {
		d = -d
	}
	s.jitter += uint32(d) - (s.jitter+8)>>4
}

// arrivalUnits is a time since a stream's first packet in its RTP clock
// units (exact for a day of 90 kHz before int64 runs out).
func arrivalUnits(since int64, clockRate uint32) int64 {
	return since * int64(clockRate) / int64(time.Second)
}

// report is one report block about the stream (RFC 3550 §6.4.1), and
// moves the interval on (A.3).
func (s *rxStats) report(ssrc uint32, now int64) reportBlock {
	ext := s.cycles + uint32(s.maxSeq)
	expected := ext - s.baseSeq + 1
	lost := int64(expected) - int64(s.count)
	lost = max(min(lost, 0x7FFFFF), -0x800000) // 24-bit signed
	expInterval := expected - s.expectedPrior
	recvInterval := s.count - s.receivedPrior
	s.expectedPrior, s.receivedPrior = expected, s.count
	var fraction uint8
	if lostInterval := int64(expInterval) - int64(recvInterval); expInterval != 0 && lostInterval > 0 {
		fraction = uint8((lostInterval << 8) / int64(expInterval))
	}
	b := reportBlock{SSRC: ssrc, FractionLost: fraction, TotalLost: int32(lost), ExtHighestSeq: ext, Jitter: s.jitter >> 4}
	if s.lastSRAt != 0 {
		b.LSR = s.lastSR
		// DLSR in 1/65536 s (RFC 3550 §6.4.1).
		b.DLSR = uint32((now - s.lastSRAt) * 65536 / int64(time.Second))
	}
	return b
}

// NACK generation: what a video layer is missing, asked for again each
// round trip until it arrives or is too old to help.
const (
	// nackWindow is how many sequence numbers a layer remembers as
	// missing: a burst beyond it is a new stream or a long outage, for
	// which a keyframe, not retransmission, is the cure.
	nackWindow = 128
	// nackReorder is how long a gap may just be reordering before it is
	// NACKed.
	nackReorder = 10 * time.Millisecond
	// nackMinInterval is the least time between two NACKs of one packet
	// (the round trip is usually shorter on the links that matter).
	nackMinInterval = 40 * time.Millisecond
	// nackGiveUp is when a missing packet stops being asked for: past a
	// second the subscriber has asked for a keyframe anyway.
	nackGiveUp = time.Second
	// nackTries bounds how often one packet is asked for.
	nackTries = 10
)

// missing is one packet a layer lacks.
type missing struct {
	seq      uint16
	since    int64 // when the gap was seen
	lastNACK int64
	tries    uint8
}

// nackList is a layer's missing packets, oldest first, in a fixed array.
type nackList struct {
	started bool
	highest uint16
	n       int
	list    [nackWindow]missing
}

func newNACKList() *nackList { return &nackList{} }

// arrived notes a packet of the layer: a gap before it is missing, and it
// is no longer missing if it was. It reports whether a gap was found.
func (l *nackList) arrived(seq uint16, at int64) (gap bool) {
	if !l.started {
		l.started, l.highest = true, seq
		return false
	}
	switch d := seq - l.highest; {
	case d == 0:
	case d < 1<<15:
		if d > nackWindow {
			l.n = 0 // a jump: start afresh
		} else {
			for s := l.highest + 1; s != seq; s++ {
				l.add(s, at)
				gap = true
			}
		}
		l.highest = seq
	default:
		l.received(seq)
	}
	return gap
}

func (l *nackList) add(seq uint16, at int64) {
	if l.n == nackWindow {
		copy(l.list[:], l.list[1:])
		l.n--
	}
	l.list[l.n] = missing{seq: seq, since: at}
	l.n++
}

// received removes seq from the missing (a retransmission or a late
// packet arrived).
func (l *nackList) received(seq uint16) {
	for i := 0; i < l.n; i++ {
		if l.list[i].seq == seq {
			copy(l.list[i:l.n], l.list[i+1:l.n])
			l.n--
			return
		}
	}
}

// due appends to dst the missing packets to ask for now, dropping those
// too old or asked too often, and returns dst.
func (l *nackList) due(dst []uint16, now int64, rtt time.Duration) []uint16 {
	interval := max(int64(nackMinInterval), int64(rtt))
	keep := 0
	for i := 0; i < l.n; i++ {
		m := l.list[i]
		if now-m.since > int64(nackGiveUp) || m.tries >= nackTries {
			continue
		}
		if now-m.since >= int64(nackReorder) && now-m.lastNACK >= interval {
			m.lastNACK = now
			m.tries++
			dst = append(dst, m.seq)
		}
		l.list[keep] = m
		keep++
	}
	l.n = keep
	return dst
}
