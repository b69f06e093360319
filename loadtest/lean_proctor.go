package loadtest

import (
	"encoding/binary"
	"maps"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/loadtest/internal/lanes"
)

// A lean proctor's receiving: streams by SSRC from the node's offers,
// each packet decrypted in place and counted as the pion proctor counts
// it (proctor.account), a NACK for every gap as it opens (RFC 4585
// §6.2.1), and receiver reports about once a second with LSR and DLSR
// from the node's sender reports (RFC 3550 §6.4.1).

// leanProctor is a proctor's lean receiving state. streams is replaced
// by the session goroutine (copy on write); the rest is the receive
// loop's.
type leanProctor struct {
	lp      *leanPeer
	pr      *proctor
	streams atomic.Pointer[map[uint32]*leanRecv]
	nextRR  int64
	blocks  []reportBlock
}

// leanRecv is one received stream.
type leanRecv struct {
	rs   *recvStream
	ssrc uint32
	// The receive loop's: the last SR's middle NTP bits and its arrival,
	// and the counts at the last report.
	lsr                    uint32
	srAt                   int64
	lastExpected, lastRecv int64
}

func newLeanProctor(lp *leanPeer) *leanProctor {
	lpr := &leanProctor{lp: lp, pr: lp.p.proctor}
	empty := map[uint32]*leanRecv{}
	lpr.streams.Store(&empty)
	return lpr
}

// noteSections adds the streams a node offer introduces; a stream's
// MediaStream id is its publisher's sid (docs/protocol.md).
func (lpr *leanProctor) noteSections(d *nodeDesc) {
	cur := *lpr.streams.Load()
	var next map[uint32]*leanRecv
	for _, s := range d.sections {
		if s.port == 0 || s.pt < 0 {
			continue
		}
		for _, l := range s.ssrcs {
			if _, ok := cur[l.ssrc]; ok {
				continue
			}
			if next == nil {
				next = maps.Clone(cur)
			}
			rs := &recvStream{sid: l.stream, video: s.kind == "video"}
			lpr.pr.mu.Lock()
			lpr.pr.streams = append(lpr.pr.streams, rs)
			lpr.pr.mu.Unlock()
			next[l.ssrc] = &leanRecv{rs: rs, ssrc: l.ssrc}
		}
	}
	if next != nil {
		lpr.streams.Store(&next)
	}
}

// rtpIn decrypts and counts one packet, NACKs a gap it opens, and sends
// the receiver report when due.
func (lpr *leanProctor) rtpIn(b []byte, wall time.Time, now int64, w *lanes.Writer) {
	lp := lpr.lp
	out, err := lp.keys.rx.DecryptRTP(b[:0], b, &lp.rxHdr)
	if err != nil {
		lp.k.decryptErrors.Add(1)
		return
	}
	lr := (*lpr.streams.Load())[lp.rxHdr.SSRC]
	seq, payload, ok := rtpSeqPayload(out)
	if lr == nil || !ok {
		lp.k.unknownSSRC.Add(1)
		return
	}
	started, before := lr.rs.seq.started, lr.rs.seq.highest
	lpr.pr.account(lr.rs, wall, now, seq, payload, len(b))
	if gap := lr.rs.seq.highest - before - 1; started && gap > 0 {
		lp.k.r.nacks.Add(min(gap, 17*maxNACKItems))
		plain := appendNACK(lp.rtcpOut[:0], lp.ssrc, lr.ssrc, uint16(before+1), uint16(lr.rs.seq.highest-1))
		lp.sealRTCP(w, plain)
	}
	if now >= lpr.nextRR {
		lpr.nextRR = now + int64(reportEvery)
		lpr.report(now, w)
	}
}

// report sends one receiver report on up to 31 streams.
func (lpr *leanProctor) report(now int64, w *lanes.Writer) {
	lpr.blocks = lpr.blocks[:0]
	for _, lr := range *lpr.streams.Load() {
		if len(lpr.blocks) == maxRRBlocks {
			break
		}
		t := &lr.rs.seq
		if !t.started {
			continue
		}
		exp, rec := t.expected(), t.received
		dExp, dRec := exp-lr.lastExpected, rec-lr.lastRecv
		lr.lastExpected, lr.lastRecv = exp, rec
		var frac uint8
		if dExp > 0 && dRec < dExp {
			frac = uint8((dExp - dRec) * 256 / dExp)
		}
		rb := reportBlock{ssrc: lr.ssrc, fractionLost: frac, lost: uint32(t.lost()), highest: uint32(t.highest), lsr: lr.lsr}
		if lr.lsr != 0 {
			rb.dlsr = uint32((now - lr.srAt) * 65536 / int64(time.Second))
		}
		lpr.blocks = append(lpr.blocks, rb)
	}
	if len(lpr.blocks) > 0 {
		lpr.lp.sealRTCP(w, appendRR(lpr.lp.rtcpOut[:0], lpr.lp.ssrc, lpr.blocks))
	}
}

// rtcpIn reads the node's sender reports for LSR.
func (lpr *leanProctor) rtcpIn(b []byte, now int64) {
	for len(b) >= 4 && b[0]>>6 == 2 {
		n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
		if n > len(b) {
			return
		}
		if b[1] == rtcpSR && n >= 28 {
			if lr := (*lpr.streams.Load())[binary.BigEndian.Uint32(b[4:])]; lr != nil {
				lr.lsr = uint32(binary.BigEndian.Uint64(b[8:]) >> 16)
				lr.srAt = now
			}
		}
		b = b[n:]
	}
}
