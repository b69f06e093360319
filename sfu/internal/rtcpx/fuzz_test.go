package rtcpx

import (
	"testing"

	"github.com/pion/rtcp"
)

// FuzzPackets feeds arbitrary bytes to the iterator and to every parser
// and view. None may panic or read outside the packet; the iterator must
// account for every octet or report why not; and where pion/rtcp accepts a
// packet too, both must read the same fields.
func FuzzPackets(f *testing.F) {
	f.Add(testCompound(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		it := Packets(b)
		total := 0
		for it.Next() {
			h, p := it.Header(), it.Packet()
			if h.Length != len(p) || h.Length < headerLen || h.Length%4 != 0 || &p[0] != &b[total] {
				t.Fatalf("header %+v for %d octets at %d", h, len(p), total)
			}
			total += len(p)
			parseAll(t, p)
		}
		if it.Err() == nil && total != len(b) {
			t.Fatalf("walk ended without error after %d of %d octets", total, len(b))
		}
		// Parsers also take a packet with more after it.
		parseAll(t, b)
	})
}

// parseAll runs every parser on p and reads every view of what parses.
func parseAll(t *testing.T, p []byte) {
	if sr, err := ParseSR(p); err == nil {
		var want rtcp.SenderReport
		if want.Unmarshal(p) == nil {
			if sr.SSRC != want.SSRC || sr.NTPTime != want.NTPTime || sr.OctetCount != want.OctetCount ||
				sr.Reports.Len() != len(want.Reports) {
				t.Fatalf("ParseSR = %+v, pion %+v", sr, want)
			}
			checkPionBlocks(t, sr.Reports, want.Reports)
		}
	}
	if rr, err := ParseRR(p); err == nil {
		var want rtcp.ReceiverReport
		if want.Unmarshal(p) == nil {
			if rr.SSRC != want.SSRC || rr.Reports.Len() != len(want.Reports) {
				t.Fatalf("ParseRR = %+v, pion %+v", rr, want)
			}
			checkPionBlocks(t, rr.Reports, want.Reports)
		}
	}
	if n, err := ParseNACK(p); err == nil {
		count := 0
		n.VisitLost(func(uint16) { count++ })
		if count < n.Pairs.Len() || 12+4*n.Pairs.Len() > len(p) {
			t.Fatalf("NACK of %d pairs visited %d in %d octets", n.Pairs.Len(), count, len(p))
		}
	}
	if pli, err := ParsePLI(p); err == nil {
		var want rtcp.PictureLossIndication
		if want.Unmarshal(p) == nil && (pli.SenderSSRC != want.SenderSSRC || pli.MediaSSRC != want.MediaSSRC) {
			t.Fatalf("ParsePLI = %+v, pion %+v", pli, want)
		}
	}
	if fir, err := ParseFIR(p); err == nil {
		for i := range fir.Entries.Len() {
			fir.Entries.At(i)
		}
	}
	if remb, err := ParseREMB(p); err == nil {
		for i := range remb.SSRCs.Len() {
			remb.SSRCs.At(i)
		}
	}
	if tw, err := ParseTWCC(p); err == nil {
		n := 0
		tw.Visit(func(seq uint16, received bool, delta int) {
			if seq != tw.BaseSeq+uint16(n) || (!received && delta != 0) {
				t.Fatalf("status %d: seq %d received %v delta %d", n, seq, received, delta)
			}
			n++
		})
		if n != int(tw.StatusCount) {
			t.Fatalf("Visit saw %d statuses of %d", n, tw.StatusCount)
		}
	}
}

// checkPionBlocks compares a view with pion's report blocks.
func checkPionBlocks(t *testing.T, got ReportBlocks, want []rtcp.ReceptionReport) {
	for i, w := range want {
		g := got.At(i)
		if g.SSRC != w.SSRC || g.FractionLost != w.FractionLost || uint32(g.TotalLost)&0xffffff != w.TotalLost ||
			g.ExtHighestSeq != w.LastSequenceNumber || g.Jitter != w.Jitter || g.LSR != w.LastSenderReport || g.DLSR != w.Delay {
			t.Fatalf("block %d = %+v, pion %+v", i, g, w)
		}
	}
}

// FuzzTWCC turns arbitrary bytes into a sequence of Record and
// AppendFeedback calls and checks every feedback against the model with
// pion as the parser (checkFeedback). Each 3-octet step is: a sequence
// number step (signed: reordering, duplicates, jumps), a time step, and
// flags (a pause of seconds, feedback now).
func FuzzTWCC(f *testing.F) {
	f.Add([]byte{1, 10, 0, 1, 10, 0, 2, 4, 1, 0xff, 4, 0, 1, 4, 0x81})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r TWCCRecorder
		m := &twccModel{arrival: make(map[int64]int64)}
		var cov twccCoverage
		ext, at := int64(1<<20), int64(0)
		for ; len(b) >= 3; b = b[3:] {
			step, dt, flags := int8(b[0]), int64(b[1]), b[2]
			switch {
			case flags&0x40 != 0:
				step *= 64 // far jumps, in and out of the window
			case flags&0x20 != 0:
				at -= dt * 1000 // a clock stepping back: nothing assumes it cannot
			}
			seq := ext + int64(step)
			ext = max(ext, seq)
			at += dt * 100
			if flags&0x10 != 0 {
				at += int64(flags&0x0f) * 1_000_000 // a pause of seconds
			}
			r.Record(uint16(seq), at)
			m.record(seq, at)
			if flags&0x80 != 0 {
				checkFeedback(t, &r, m, &cov)
			}
		}
		checkFeedback(t, &r, m, &cov)
	})
}
