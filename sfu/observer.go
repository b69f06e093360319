package sfu

import (
	"sync"
	"time"
)

// Observer receives the media plane's per-report measurements, which are
// distributions rather than counts and so cannot live in Stats. It is
// called from RTCP readers (about once a second per track), never per
// packet. Implementations must be cheap and must not block.
type Observer interface {
	// ReceptionReport is one subscriber's view of one down-track
	// (RFC 3550 §6.4.2): round-trip time and interarrival jitter.
	ReceptionReport(rtt, jitter time.Duration)
}

// ntpCompact returns t as the middle 32 bits of an NTP timestamp, the unit
// of a reception report's LSR and DLSR fields (RFC 3550 §4).
func ntpCompact(t time.Time) uint32 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix()+ntpEpochOffset) << 16
	frac := uint64(t.Nanosecond()) << 16 / 1e9
	return uint32(secs | frac)
}

// reportMeter turns a subscriber's receiver reports for one down-track
// into RTT, jitter and loss. Written by the subscriber's reader; read
// (last) by Stats, hence the lock.
type reportMeter struct {
	clockRate uint32
	// mu guards last, lost and seen.
	mu   sync.Mutex
	lost int64 // cumulative lost at the previous report
	seen bool
	last reportFigures
}

// reportFigures are what the latest report said.
type reportFigures struct {
	lost     int64
	fraction float64
	jitter   time.Duration
	rtt      time.Duration
}

// observe handles one reception report block about our stream.
func (m *reportMeter) observe(rr reportBlock, now time.Time, stats *counters, obs Observer) {
	// Cumulative lost is a signed 24-bit count (RFC 3550 §6.4.1). Count
	// only growth: duplicates can shrink it.
	lost := int64(rr.TotalLost)
	var rtt time.Duration
	if rr.LSR != 0 {
		// RFC 3550 §6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s.
		if d := ntpCompact(now) - rr.LSR - rr.DLSR; d < 1<<31 {
			rtt = time.Duration(uint64(d) * uint64(time.Second) >> 16)
		}
	}
	var jitter time.Duration
	if m.clockRate > 0 {
		jitter = time.Duration(uint64(rr.Jitter) * uint64(time.Second) / uint64(m.clockRate))
	}
	m.mu.Lock()
	if m.seen && lost > m.lost {
		stats.packetsLost.Add(uint64(lost - m.lost))
	}
	m.lost, m.seen = lost, true
	m.last = reportFigures{lost: lost, fraction: float64(rr.FractionLost) / 256, jitter: jitter, rtt: rtt}
	m.mu.Unlock()
	if obs != nil {
		obs.ReceptionReport(rtt, jitter)
	}
}

// figures returns what the latest report said.
func (m *reportMeter) figures() reportFigures {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}
