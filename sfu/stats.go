package sfu

import (
	"sync/atomic"

	"github.com/pion/webrtc/v4"
)

// Stats is a snapshot of the media plane's counters since the Engine
// started. The metrics package turns it into Prometheus series on scrape,
// so the hot path only ever adds to atomics.
type Stats struct {
	PacketsIn      uint64 // RTP packets read from publishers
	BytesIn        uint64 // RTP bytes (header + payload) read from publishers
	PacketsOut     uint64 // RTP packets written to subscribers
	BytesOut       uint64 // RTP bytes written to subscribers
	WriteErrors    uint64 // subscriber writes that failed (closed or full transport)
	Malformed      uint64 // packets from publishers that did not parse as RTP
	PacketsLost    uint64 // packets subscribers reported lost (receiver reports)
	NACKs          uint64 // packets subscribers asked to be resent
	Retransmits    uint64 // packets resent to subscribers (NACK responder)
	PLIsSent       uint64 // keyframe requests sent to publishers
	PLIsThrottled  uint64 // keyframe requests folded into one already due
	LayerSwitches  uint64 // simulcast layer switches made by down-tracks
	AudioTracksIn  int64  // published audio tracks being read now
	VideoTracksIn  int64  // published video tracks being read now
	AudioTracksOut int64  // audio down-tracks bound to subscribers now
	VideoTracksOut int64  // video down-tracks bound to subscribers now
	Peers          int64  // open PeerConnections
}

// counters are the live atomics behind Stats. One instance per Engine,
// shared by every Peer, Track and DownTrack it made.
type counters struct {
	packetsIn, bytesIn     atomic.Uint64
	packetsOut, bytesOut   atomic.Uint64
	writeErrors, malformed atomic.Uint64
	packetsLost, nacks     atomic.Uint64
	retransmits            atomic.Uint64
	layerSwitches          atomic.Uint64
	plisSent, plisFolded   atomic.Uint64
	tracksOut              [2]atomic.Int64 // by kindIndex
	peers                  atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		PacketsIn:      c.packetsIn.Load(),
		BytesIn:        c.bytesIn.Load(),
		PacketsOut:     c.packetsOut.Load(),
		BytesOut:       c.bytesOut.Load(),
		WriteErrors:    c.writeErrors.Load(),
		Malformed:      c.malformed.Load(),
		PacketsLost:    c.packetsLost.Load(),
		NACKs:          c.nacks.Load(),
		Retransmits:    c.retransmits.Load(),
		PLIsSent:       c.plisSent.Load(),
		PLIsThrottled:  c.plisFolded.Load(),
		LayerSwitches:  c.layerSwitches.Load(),
		AudioTracksOut: c.tracksOut[0].Load(),
		VideoTracksOut: c.tracksOut[1].Load(),
		Peers:          c.peers.Load(),
	}
}

// kindIndex indexes per-kind counters: 0 audio, 1 video.
func kindIndex(k webrtc.RTPCodecType) int {
	if k == webrtc.RTPCodecTypeVideo {
		return 1
	}
	return 0
}
