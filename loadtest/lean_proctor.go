package loadtest

import (
	"encoding/binary"
	"slices"
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
	streams atomic.Pointer[ssrcTable]
	nextRR  int64
	rrNext  int // the stream the next report starts at
	blocks  []reportBlock
}

// leanRecv is one received stream: its counts (in the proctor's
// streams, for the result) in place, so a packet reaches them with no
// further pointer to follow.
type leanRecv struct {
	rs   recvStream
	ssrc uint32
	// The receive loop's: the last SR's middle NTP bits and its arrival,
	// and the counts at the last report.
	lsr                    uint32
	srAt                   int64
	lastExpected, lastRecv int64
}

// ssrcTable finds a proctor's streams by SSRC: open addressing with
// linear probing in a power-of-two table at most half full, the SSRC
// beside its stream in each slot, so a packet's lookup is one hash and
// usually one slot. It is never changed once stored: noteSections builds
// the next one.
type ssrcTable struct {
	slots []ssrcSlot
	all   []*leanRecv // in the order the node offered them
}

type ssrcSlot struct {
	ssrc uint32
	lr   *leanRecv // nil: empty
}

func newSSRCTable(all []*leanRecv) *ssrcTable {
	n := 8
	for n < 2*len(all) {
		n *= 2
	}
	t := &ssrcTable{slots: make([]ssrcSlot, n), all: all}
	for _, lr := range all {
		i := t.home(lr.ssrc)
		for t.slots[i].lr != nil {
			i = (i + 1) & (len(t.slots) - 1)
		}
		t.slots[i] = ssrcSlot{ssrc: lr.ssrc, lr: lr}
	}
	return t
}

// home is an SSRC's first slot (Fibonacci hashing: the node's SSRCs
// are random, but a multiplication spreads any pattern).
func (t *ssrcTable) home(ssrc uint32) int {
	return int((ssrc*2654435769)>>16) & (len(t.slots) - 1)
}

// find is the stream of ssrc, nil if none.
func (t *ssrcTable) find(ssrc uint32) *leanRecv {
	for i := t.home(ssrc); ; i = (i + 1) & (len(t.slots) - 1) {
		s := &t.slots[i]
		if s.lr == nil || s.ssrc == ssrc {
			return s.lr
		}
	}
}

func newLeanProctor(lp *leanPeer) *leanProctor {
	lpr := &leanProctor{lp: lp, pr: lp.p.proctor}
	lpr.streams.Store(newSSRCTable(nil))
	return lpr
}

// noteSections adds the streams a node offer introduces; a stream's
// MediaStream id is its publisher's sid (docs/protocol.md).
func (lpr *leanProctor) noteSections(d *nodeDesc) {
	cur := lpr.streams.Load()
	var added []*leanRecv
	for _, s := range d.sections {
		if s.port == 0 || s.pt < 0 {
			continue
		}
		for _, l := range s.ssrcs {
			if cur.find(l.ssrc) != nil || slices.ContainsFunc(added, func(lr *leanRecv) bool { return lr.ssrc == l.ssrc }) {
				continue
			}
			lr := &leanRecv{rs: recvStream{sid: l.stream, video: s.kind == "video"}, ssrc: l.ssrc}
			lpr.pr.mu.Lock()
			lpr.pr.streams = append(lpr.pr.streams, &lr.rs)
			lpr.pr.mu.Unlock()
			added = append(added, lr)
		}
	}
	if len(added) > 0 {
		lpr.streams.Store(newSSRCTable(append(slices.Clip(cur.all), added...)))
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
	lr := lpr.streams.Load().find(lp.rxHdr.SSRC)
	seq, payload, ok := rtpSeqPayload(out)
	if lr == nil || !ok {
		lp.k.unknownSSRC.Add(1)
		return
	}
	started, before := lr.rs.seq.started, lr.rs.seq.highest
	lpr.pr.account(&lr.rs, wall, now, seq, payload, len(b))
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

// report sends one receiver report on up to 31 streams, the next
// report going on from where this one stopped, so every stream is
// reported on when there are more.
func (lpr *leanProctor) report(now int64, w *lanes.Writer) {
	lpr.blocks = lpr.blocks[:0]
	all := lpr.streams.Load().all
	for range len(all) {
		if len(lpr.blocks) == maxRRBlocks {
			break
		}
		lr := all[lpr.rrNext%len(all)]
		lpr.rrNext++
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
			if lr := lpr.streams.Load().find(binary.BigEndian.Uint32(b[4:])); lr != nil {
				lr.lsr = uint32(binary.BigEndian.Uint64(b[8:]) >> 16)
				lr.srAt = now
			}
		}
		b = b[n:]
	}
}
