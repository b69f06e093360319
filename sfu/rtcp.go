package sfu

import (
	"time"

	"github.com/invigil/invigil/sfu/internal/rtcpx"
)

// RTCP of the node's own (RFC 3550 §6, RFC 4585, RFC 5104): what it reads
// from clients (sender and receiver reports, NACKs, keyframe requests,
// REMB) and what it sends them on the Engine's clock (receiver reports,
// NACKs and transport-wide CC feedback to publishers, sender reports to
// subscribers, and keyframe requests). The packets are parsed and built
// by rtcpx without allocating.

const (
	// reportInterval is how often the node sends receiver reports to a
	// publisher and sender reports to a subscriber: once a second, as
	// browsers do for a stream of this rate (RFC 3550 §6.2 allows it).
	reportInterval = time.Second
	// twccInterval is how often a publisher gets transport-wide CC
	// feedback: often enough for its send-side estimator to follow the
	// uplink (libwebrtc sends it every 50–250 ms).
	twccInterval = 100 * time.Millisecond
	// stateInterval is how often a session's connection state is checked.
	stateInterval = 250 * time.Millisecond
	// maxRTCP is the size of one compound the node builds.
	maxRTCP = 1200
)

// reportBlock is one reception report (RFC 3550 §6.4.1).
type reportBlock = rtcpx.ReportBlock

// rtcpTimers are when a session's periodic RTCP is next due (unix nanos).
// Owned by the clock; the receive state they read is under rxMu.
type rtcpTimers struct {
	report, sr, twcc, state, consent int64
	buf                              [maxRTCP]byte
	blocks                           []reportBlock
	seqs                             []uint16
}

// twccState records the transport-wide sequence numbers a publisher's
// packets carry and their arrival, for its feedback.
type twccState struct {
	rec   *rtcpx.TWCCRecorder
	media uint32 // a media SSRC of the client, named in the feedback
}

func (t *twccState) record(seq uint16, at int64) {
	if t.rec == nil {
		t.rec = new(rtcpx.TWCCRecorder) // allocated with the client's first packet, then reused
	}
	t.rec.Record(seq, at/int64(time.Microsecond))
}

// rtcpIn handles one SRTCP compound from the client.
func (p *Peer) rtcpIn(s *sender, b []byte, at int64) {
	p.rxMu.Lock()
	keys := p.rx.keys
	if keys == nil {
		p.rxMu.Unlock()
		return
	}
	out, err := keys.rx.DecryptRTCP(b[:0], b, &p.rx.rtcpHdr)
	p.rxMu.Unlock()
	if err != nil {
		p.e.counter.srtpErrors.Add(1)
		return
	}
	p.rtcpPlain(s, out, at)
}

// rtcpPlain handles one decrypted compound.
func (p *Peer) rtcpPlain(s *sender, out []byte, at int64) {
	p.rxMu.Lock()
	// Sender reports are about the client's streams (rx state); the rest
	// are about what the node sends, read after the lock.
	it := rtcpx.Packets(out)
	for it.Next() {
		if it.Header().Type == rtcpx.TypeSR {
			if sr, err := rtcpx.ParseSR(it.Packet()); err == nil {
				if st := p.rx.find(sr.SSRC); st != nil {
					st.stats.lastSR = uint32(sr.NTPTime >> 16)
					st.stats.lastSRAt = at
				}
			}
		}
	}
	p.rxMu.Unlock()
	sends := p.sendIndex()
	it = rtcpx.Packets(out)
	for it.Next() {
		pkt := it.Packet()
		switch h := it.Header(); h.Type {
		case rtcpx.TypeSR:
			if sr, err := rtcpx.ParseSR(pkt); err == nil {
				p.reportsIn(sends, sr.Reports, at)
			}
		case rtcpx.TypeRR:
			if rr, err := rtcpx.ParseRR(pkt); err == nil {
				p.reportsIn(sends, rr.Reports, at)
			}
		case rtcpx.TypeRTPFB:
			if h.Count == rtcpx.FmtNACK {
				if n, err := rtcpx.ParseNACK(pkt); err == nil {
					if d := sends.find(n.MediaSSRC); d != nil {
						n.VisitLost(func(seq uint16) {
							p.e.counter.nacks.Add(1)
							d.resend(s, seq, at)
						})
					}
				}
			}
		case rtcpx.TypePSFB:
			switch h.Count {
			case rtcpx.FmtPLI:
				if pli, err := rtcpx.ParsePLI(pkt); err == nil {
					if d := sends.find(pli.MediaSSRC); d != nil {
						d.src.RequestKeyframe(d.want())
					}
				}
			case rtcpx.FmtFIR:
				if fir, err := rtcpx.ParseFIR(pkt); err == nil {
					for i := range fir.Entries.Len() {
						if d := sends.find(fir.Entries.At(i).SSRC); d != nil {
							d.src.RequestKeyframe(d.want())
						}
					}
				}
			case rtcpx.FmtAFB:
				if remb, err := rtcpx.ParseREMB(pkt); err == nil {
					p.remb.Store(remb.Bitrate)
				}
			}
		}
	}
	if it.Err() != nil {
		p.e.counter.malformed.Add(1)
	}
}

// reportsIn meters reception reports about the node's streams.
func (p *Peer) reportsIn(sends *sendIndex, blocks rtcpx.ReportBlocks, at int64) {
	for i := range blocks.Len() {
		rb := blocks.At(i)
		if d := sends.find(rb.SSRC); d != nil {
			d.meter.observe(rb, time.Unix(0, at), &p.e.counter, p.e.obs)
		}
	}
}

// sendPLI asks the client for a keyframe on ssrc (RFC 4585 §6.3.1), now.
func (p *Peer) sendPLI(ssrc uint32) bool {
	var buf [64]byte
	b := rtcpx.AppendPLI(buf[:0], p.rx.ssrc, ssrc)
	return p.writeRTCP(nil, b)
}

// tick runs a session's timers on the Engine's clock.
func (p *Peer) tick(s *sender, now int64) {
	t := &p.rx.rtcp
	if now >= t.state {
		t.state = now + int64(stateInterval)
		p.checkState(now)
	}
	if p.keys.Load() == nil || p.gone.Load() {
		return
	}
	p.rxMu.Lock()
	if p.rx.missing > 0 {
		p.nackDue(s, now)
	}
	if now >= t.twcc {
		t.twcc = now + int64(twccInterval)
		p.twccDue(s)
	}
	if now >= t.report {
		t.report = now + int64(reportInterval)
		p.receiverReports(s, now)
	}
	if p.e.conceal {
		p.keyframeCadence(s, now)
	}
	p.rxMu.Unlock()
	if now >= t.sr {
		t.sr = now + int64(reportInterval)
		p.senderReports(s, now)
	}
	if now >= t.consent {
		t.consent = now + int64(consentInterval)
		if sel := p.sel.Load(); sel != nil {
			if b := p.ice.consentCheck(sel.addr, time.Unix(0, now)); b != nil {
				p.sendRaw(s, b, sel.addr, sel.tcp)
			}
		}
	}
}

// nackDue sends one NACK per layer with packets to ask for again. The
// caller holds rxMu.
func (p *Peer) nackDue(s *sender, now int64) {
	t := &p.rx.rtcp
	rtt := time.Duration(p.ice.rtt.Load())
	p.rx.missing = 0
	for _, st := range p.rx.streams {
		if st.nack == nil || st.nack.n == 0 {
			continue
		}
		t.seqs = st.nack.due(t.seqs[:0], now, rtt)
		p.rx.missing += st.nack.n
		if len(t.seqs) == 0 {
			continue
		}
		b := rtcpx.AppendNACK(t.buf[:0], p.rx.ssrc, st.ssrc, t.seqs)
		if p.writeRTCP(s, b) {
			p.e.counter.nacksSent.Add(uint64(len(t.seqs)))
		}
	}
}

// twccDue sends the transport-wide CC feedback recorded since the last.
func (p *Peer) twccDue(s *sender) {
	tw := &p.rx.twcc
	if tw.rec == nil {
		return
	}
	if tw.media == 0 && len(p.rx.streams) > 0 {
		tw.media = p.rx.streams[0].ssrc
	}
	if b, ok := tw.rec.AppendFeedback(p.rx.rtcp.buf[:0], p.rx.ssrc, tw.media); ok {
		p.writeRTCP(s, b)
	}
}

// receiverReports sends one receiver report about the client's streams.
func (p *Peer) receiverReports(s *sender, now int64) {
	t := &p.rx.rtcp
	t.blocks = t.blocks[:0]
	for _, st := range p.rx.streams {
		if st.rtx || !st.stats.started {
			continue
		}
		rb := st.stats.report(st.ssrc, now)
		st.fraction = float64(rb.FractionLost) / 256
		bytes := st.layer.bytes.Load()
		st.rate = (bytes - st.rateBytes) * 8 * uint64(time.Second) / uint64(reportInterval)
		st.rateBytes = bytes
		if len(t.blocks) < 31 {
			t.blocks = append(t.blocks, rb)
		}
	}
	if len(t.blocks) == 0 {
		return
	}
	if b, err := rtcpx.AppendRR(t.buf[:0], p.rx.ssrc, t.blocks); err == nil {
		p.writeRTCP(s, b)
	}
}

// senderReports sends one sender report per stream the node sends the
// client (RFC 3550 §6.4.1): its RTP time now, taken from the last packet
// sent and the wall time since, and its counts.
func (p *Peer) senderReports(s *sender, now int64) {
	var buf [maxRTCP]byte
	b := buf[:0]
	for _, d := range p.sendIndex().downs {
		bd := d.binding.Load()
		if bd == nil {
			continue
		}
		d.mu.Lock()
		m := d.m
		d.mu.Unlock()
		if !m.started {
			continue
		}
		octets := d.sentOctets.Load()
		d.rate.Store(uint64(octets-d.rateOctets) * 8 * uint64(time.Second) / uint64(reportInterval))
		d.rateOctets = octets
		elapsed := max(now-m.lastAt, 0)
		ts := m.lastTS + uint32(uint64(elapsed)*uint64(d.src.codec.ClockRate)/uint64(time.Second))
		info := rtcpx.SenderInfo{SSRC: bd.ssrc, NTPTime: ntpTime(time.Unix(0, now)), RTPTime: ts,
			PacketCount: d.sentPackets.Load(), OctetCount: d.sentOctets.Load()}
		if len(b)+senderReportSize > len(buf) {
			p.writeRTCP(s, b)
			b = buf[:0]
		}
		if out, err := rtcpx.AppendSR(b, info, nil); err == nil {
			b = out
		}
	}
	if len(b) > 0 {
		p.writeRTCP(s, b)
	}
}

// senderReportSize is an SR without report blocks: header, SSRC and the
// sender info (RFC 3550 §6.4.1).
const senderReportSize = 28

// ntpTime is t as a 64-bit NTP timestamp (RFC 5905 §6).
func ntpTime(t time.Time) uint64 {
	const ntpEpochOffset = 2208988800 // seconds from 1900 to 1970
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return secs<<32 | frac
}

// sendIndex maps the node's outgoing SSRCs to their down-tracks, for the
// client's reports and requests. Immutable; rebuilt when a binding
// changes.
type sendIndex struct {
	downs []*DownTrack
	ssrcs []uint32 // per down: its SSRC and, after, its RTX SSRC
}

// find returns the down-track sending ssrc (or its RTX), or nil.
func (x *sendIndex) find(ssrc uint32) *DownTrack {
	for i, s := range x.ssrcs {
		if s == ssrc {
			return x.downs[i/2]
		}
	}
	return nil
}

// indexSendsLocked rebuilds the session's send index after a binding
// changed. The caller holds p.mu.
func (p *Peer) indexSendsLocked() {
	x := &sendIndex{}
	for _, sub := range p.subs {
		d := sub.down
		if b := d.binding.Load(); b != nil {
			x.downs = append(x.downs, d)
			x.ssrcs = append(x.ssrcs, b.ssrc, b.rtxSSRC)
		}
	}
	p.sends.Store(x)
}

// sendIndex returns the current send index.
func (p *Peer) sendIndex() *sendIndex {
	if x := p.sends.Load(); x != nil {
		return x
	}
	return &sendIndex{}
}
