package sfu

import (
	"sync/atomic"
)

// Stats is a snapshot of the media plane's counters since the Engine
// started. The metrics package turns it into Prometheus series on scrape,
// so the packet path only ever adds to atomics.
type Stats struct {
	PacketsIn     uint64 // RTP packets read from publishers
	BytesIn       uint64 // RTP bytes (header + payload) read from publishers
	PacketsOut    uint64 // RTP packets written to subscribers
	BytesOut      uint64 // RTP bytes written to subscribers
	WriteErrors   uint64 // subscriber writes that failed (encryption)
	Malformed     uint64 // datagrams that did not parse (RTP, RTCP, STUN)
	PacketsLost   uint64 // packets subscribers reported lost (receiver reports)
	NACKs         uint64 // packets subscribers asked to be resent
	NACKsSent     uint64 // packets the node asked publishers to resend
	Retransmits   uint64 // packets resent to subscribers (NACK responder)
	PLIsSent      uint64 // keyframe requests sent to publishers
	PLIsThrottled uint64 // keyframe requests folded into one already due
	// PLIsConcealed counts subscribers' keyframe requests not passed on
	// to the publisher because Config.ConcealFocus keeps a cadence instead.
	PLIsConcealed uint64
	LayerSwitches uint64 // simulcast layer switches made by down-tracks
	SRTPErrors    uint64 // packets that failed SRTP authentication or replay checks
	UnknownSource uint64 // datagrams from addresses no session validated
	UnknownSSRC   uint64 // RTP from a session on an SSRC its SDP does not place
	STUNRefused   uint64 // checks with wrong or unknown credentials
	DTLSFailures  uint64 // handshakes that failed
	ReadErrors    uint64 // socket read errors
	// TemporalDrops counts video packets not sent to a subscriber because
	// their VP8 temporal layer was above the one its downlink fits.
	TemporalDrops uint64
	// Drops counts packets the node did not send, by reason (DropReasons
	// names them).
	Drops          [numDropReasons]uint64
	AudioTracksIn  int64 // published audio tracks being read now
	VideoTracksIn  int64 // published video tracks being read now
	AudioTracksOut int64 // audio down-tracks bound to subscribers now
	VideoTracksOut int64 // video down-tracks bound to subscribers now
	Peers          int64 // open sessions
}

// dropReason says why a packet was not sent.
type dropReason int

const (
	// dropVideoBacklog: an ICE-TCP subscriber's backlog was past its
	// video budget; the down-track waits for the next keyframe.
	dropVideoBacklog dropReason = iota
	// dropAudioBacklog: past the audio budget too (audio goes last).
	dropAudioBacklog
	// dropSocket: the UDP socket's send buffer was full.
	dropSocket
	// dropTCPStalled: an ICE-TCP write timed out; the connection closed.
	dropTCPStalled
	// dropNotConnected: no path, keys or consent yet (or any more).
	dropNotConnected
	// dropTooLarge: a packet too large to send.
	dropTooLarge
	numDropReasons
)

// DropReasons names Stats.Drops' entries, as metric labels.
var DropReasons = [numDropReasons]string{"video_backlog", "audio_backlog", "socket_full", "tcp_stalled", "not_connected", "too_large"}

// counters are the live atomics behind Stats. One instance per Engine,
// shared by every Peer, Track and DownTrack it made.
type counters struct {
	packetsIn, bytesIn     atomic.Uint64
	packetsOut, bytesOut   atomic.Uint64
	writeErrors, malformed atomic.Uint64
	packetsLost, nacks     atomic.Uint64
	nacksSent, retransmits atomic.Uint64
	layerSwitches          atomic.Uint64
	plisSent, plisFolded   atomic.Uint64
	plisConcealed          atomic.Uint64
	srtpErrors             atomic.Uint64
	unknownSource          atomic.Uint64
	unknownSSRC            atomic.Uint64
	stunRefused            atomic.Uint64
	dtlsFailures           atomic.Uint64
	readErrors             atomic.Uint64
	temporalDrops          atomic.Uint64
	drops                  [numDropReasons]atomic.Uint64
	tracksOut              [2]atomic.Int64 // by kindIndex
	peers                  atomic.Int64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		PacketsIn:      c.packetsIn.Load(),
		BytesIn:        c.bytesIn.Load(),
		PacketsOut:     c.packetsOut.Load(),
		BytesOut:       c.bytesOut.Load(),
		WriteErrors:    c.writeErrors.Load(),
		Malformed:      c.malformed.Load(),
		PacketsLost:    c.packetsLost.Load(),
		NACKs:          c.nacks.Load(),
		NACKsSent:      c.nacksSent.Load(),
		Retransmits:    c.retransmits.Load(),
		PLIsSent:       c.plisSent.Load(),
		PLIsThrottled:  c.plisFolded.Load(),
		PLIsConcealed:  c.plisConcealed.Load(),
		LayerSwitches:  c.layerSwitches.Load(),
		SRTPErrors:     c.srtpErrors.Load(),
		UnknownSource:  c.unknownSource.Load(),
		UnknownSSRC:    c.unknownSSRC.Load(),
		STUNRefused:    c.stunRefused.Load(),
		DTLSFailures:   c.dtlsFailures.Load(),
		ReadErrors:     c.readErrors.Load(),
		TemporalDrops:  c.temporalDrops.Load(),
		AudioTracksOut: c.tracksOut[0].Load(),
		VideoTracksOut: c.tracksOut[1].Load(),
		Peers:          c.peers.Load(),
	}
	for i := range c.drops {
		s.Drops[i] = c.drops[i].Load()
	}
	return s
}

// kindIndex indexes per-kind counters: 0 audio, 1 video.
func kindIndex(k Kind) int {
	if k == KindVideo {
		return 1
	}
	return 0
}
