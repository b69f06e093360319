package sfu

import "sync/atomic"

// Stats is a snapshot of the media plane's counters since the Engine
// started. The metrics package turns it into Prometheus series on scrape,
// so the hot path only ever adds to atomics.
type Stats struct {
	PacketsIn     uint64 // RTP packets read from publishers
	BytesIn       uint64 // RTP bytes (header + payload) read from publishers
	PacketsOut    uint64 // RTP packets written to subscribers
	BytesOut      uint64 // RTP bytes written to subscribers
	WriteErrors   uint64 // subscriber writes that failed (closed or full transport)
	Malformed     uint64 // packets from publishers that did not parse as RTP
	PLIsSent      uint64 // keyframe requests sent to publishers
	PLIsThrottled uint64 // keyframe requests folded into one already due
	TracksIn      int64  // published tracks being read now
	TracksOut     int64  // down-tracks bound to subscribers now
	Peers         int64  // open PeerConnections
}

// counters are the live atomics behind Stats. One instance per Engine,
// shared by every Peer, Track and DownTrack it made.
type counters struct {
	packetsIn, bytesIn     atomic.Uint64
	packetsOut, bytesOut   atomic.Uint64
	writeErrors, malformed atomic.Uint64
	plisSent, plisFolded   atomic.Uint64
	tracksIn, tracksOut    atomic.Int64
	peers                  atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsIn:     c.packetsIn.Load(),
		BytesIn:       c.bytesIn.Load(),
		PacketsOut:    c.packetsOut.Load(),
		BytesOut:      c.bytesOut.Load(),
		WriteErrors:   c.writeErrors.Load(),
		Malformed:     c.malformed.Load(),
		PLIsSent:      c.plisSent.Load(),
		PLIsThrottled: c.plisFolded.Load(),
		TracksIn:      c.tracksIn.Load(),
		TracksOut:     c.tracksOut.Load(),
		Peers:         c.peers.Load(),
	}
}
