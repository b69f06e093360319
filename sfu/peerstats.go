package sfu

import "time"

// PeerStats are one session's media figures now: what the rooms API shows
// of a participant's connection, and what bandwidth decisions read.
type PeerStats struct {
	State ConnState
	// CandidateType is how the client reached the node (host, srflx,
	// prflx, relay), once connected.
	CandidateType string
	// RTT is the round trip of the node's own ICE consent checks (RFC
	// 7675 §5.1, every 5 s): the one measure a publisher gives, since it
	// receives no media to report on. 0 before the first answer.
	RTT time.Duration
	In  []StreamStats // what the client sends: one entry per layer of each track
	Out []StreamStats // what the node sends it: one entry per track
}

// StreamStats describe one RTP stream of a session.
type StreamStats struct {
	TrackID string
	Kind    Kind
	Source  string // camera, microphone, screen, talkback
	// Layer is the simulcast layer (In) or the layer forwarded now (Out;
	// QualityOff before the first).
	Layer int
	RID   string
	// BitsPerSecond is the rate over the last report interval (1 s).
	BitsPerSecond uint64
	Packets       uint64
	// Lost is the cumulative count of packets missing: as the node
	// counts them (In), or as the client's receiver reports say (Out).
	Lost int64
	// FractionLost is the share lost over the last report interval.
	FractionLost float64
	Jitter       time.Duration
	// RTT is, for Out, the round trip from the client's receiver reports
	// (RFC 3550 §6.4.1 LSR/DLSR).
	RTT time.Duration
}

// Stats returns the session's figures now.
func (p *Peer) Stats() PeerStats {
	st := PeerStats{State: ConnState(p.state.Load()), RTT: time.Duration(p.ice.rtt.Load())}
	if sel := p.sel.Load(); sel != nil && p.connected.Load() {
		st.CandidateType = p.ice.candidateType(sel.addr)
	}
	p.rxMu.Lock()
	for _, s := range p.rx.streams {
		if s.rtx {
			continue
		}
		exp := s.stats.cycles + uint32(s.stats.maxSeq) - s.stats.baseSeq + 1
		st.In = append(st.In, StreamStats{
			TrackID: s.track.id, Kind: s.track.kind, Source: s.track.source, Layer: s.layer.index, RID: s.layer.rid,
			BitsPerSecond: s.rate, Packets: uint64(s.stats.count), Lost: max(int64(exp)-int64(s.stats.count), 0),
			FractionLost: s.fraction, Jitter: jitterDuration(s.stats.jitter>>4, s.track.codec.ClockRate),
		})
	}
	p.rxMu.Unlock()
	for _, d := range p.sendIndex().downs {
		f := d.meter.figures()
		st.Out = append(st.Out, StreamStats{
			TrackID: d.src.id, Kind: d.src.kind, Source: d.src.source, Layer: d.Layer(),
			BitsPerSecond: d.rate.Load(), Packets: uint64(d.sentPackets.Load()), Lost: f.lost,
			FractionLost: f.fraction, Jitter: f.jitter, RTT: f.rtt,
		})
	}
	return st
}

func jitterDuration(units, clockRate uint32) time.Duration {
	if clockRate == 0 {
		return 0
	}
	return time.Duration(uint64(units) * uint64(time.Second) / uint64(clockRate))
}
