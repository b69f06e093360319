package rtcpx

import (
	"testing"
)

// testCompound is one of each packet rtcpx reads, built by its builders.
func testCompound(t testing.TB) []byte {
	t.Helper()
	blocks := []ReportBlock{{SSRC: 2, FractionLost: 3, TotalLost: -4, ExtHighestSeq: 5, Jitter: 6, LSR: 7, DLSR: 8}}
	b, err := AppendSR(nil, SenderInfo{SSRC: 1, NTPTime: 2, RTPTime: 3, PacketCount: 4, OctetCount: 5}, blocks)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = AppendSDES(b, 1, "abcdefghijklmnop"); err != nil {
		t.Fatal(err)
	}
	if b, err = AppendRR(b, 1, blocks); err != nil {
		t.Fatal(err)
	}
	b = AppendNACK(b, 1, 2, []uint16{10, 11, 13, 40})
	b = AppendPLI(b, 1, 2)
	b = AppendFIR(b, 1, []FIREntry{{SSRC: 2, Seq: 3}})
	if b, err = AppendREMB(b, 1, 1_500_000, []uint32{2, 3}); err != nil {
		t.Fatal(err)
	}
	var r TWCCRecorder
	for i := range 50 {
		if i%7 != 3 {
			r.Record(uint16(65500+i), int64(i)*1100)
		}
	}
	b, _ = r.AppendFeedback(b, 1, 2)
	return b
}

// packetOf returns the first packet of type typ (and FMT fmt, if ≥ 0) in b.
func packetOf(t testing.TB, b []byte, typ uint8, fmt int) []byte {
	t.Helper()
	for it := Packets(b); it.Next(); {
		if h := it.Header(); h.Type == typ && (fmt < 0 || int(h.Count) == fmt) {
			return it.Packet()
		}
	}
	t.Fatalf("no packet of type %d/%d", typ, fmt)
	return nil
}

// TestZeroAllocs proves that walking, every parser and view, and every
// builder given a buffer with room allocate nothing.
func TestZeroAllocs(t *testing.T) {
	c := testCompound(t)
	sr, rr := packetOf(t, c, TypeSR, -1), packetOf(t, c, TypeRR, -1)
	nack, twcc := packetOf(t, c, TypeRTPFB, FmtNACK), packetOf(t, c, TypeRTPFB, FmtTWCC)
	pli, fir, remb := packetOf(t, c, TypePSFB, FmtPLI), packetOf(t, c, TypePSFB, FmtFIR), packetOf(t, c, TypePSFB, FmtAFB)
	blocks := make([]ReportBlock, 4)
	lost := []uint16{100, 101, 105, 117, 118, 200, 65535, 0}
	buf := make([]byte, 0, 4096)
	rec := new(TWCCRecorder)
	var seq uint16
	var at int64
	var sum int

	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Packets", func() {
			it := Packets(c)
			for it.Next() {
				sum += it.Header().Length + len(it.Packet())
			}
			if it.Err() != nil {
				t.Fatal(it.Err())
			}
		}},
		{"ParseSR", func() {
			p, _ := ParseSR(sr)
			sum += int(p.Reports.At(0).TotalLost)
		}},
		{"ParseRR", func() {
			p, _ := ParseRR(rr)
			sum += int(p.Reports.At(0).Jitter)
		}},
		{"ParseNACK", func() {
			p, _ := ParseNACK(nack)
			p.VisitLost(func(seq uint16) { sum += int(seq) })
		}},
		{"ParsePLI", func() {
			p, _ := ParsePLI(pli)
			sum += int(p.MediaSSRC)
		}},
		{"ParseFIR", func() {
			p, _ := ParseFIR(fir)
			sum += int(p.Entries.At(0).Seq)
		}},
		{"ParseREMB", func() {
			p, _ := ParseREMB(remb)
			sum += int(p.Bitrate) + int(p.SSRCs.At(1))
		}},
		{"ParseTWCC", func() {
			p, _ := ParseTWCC(twcc)
			p.Visit(func(seq uint16, received bool, delta int) { sum += delta })
		}},
		{"ParseErrors", func() {
			_, err := ParseSR(rr)
			_, err2 := ParseTWCC(twcc[:20])
			sum += len(err.Error()) + len(err2.Error())
		}},
		{"AppendSR", func() { buf, _ = AppendSR(buf[:0], SenderInfo{SSRC: 1}, blocks) }},
		{"AppendRR", func() { buf, _ = AppendRR(buf[:0], 1, blocks) }},
		{"AppendSDES", func() { buf, _ = AppendSDES(buf[:0], 1, "abcdefghijklmnop") }},
		{"AppendNACK", func() { buf = AppendNACK(buf[:0], 1, 2, lost) }},
		{"AppendPLI", func() { buf = AppendPLI(buf[:0], 1, 2) }},
		{"AppendFIR", func() { buf = AppendFIR(buf[:0], 1, []FIREntry{{SSRC: 2, Seq: 3}}) }},
		{"AppendREMB", func() { buf, _ = AppendREMB(buf[:0], 1, 2_000_000, []uint32{2, 3}) }},
		{"TWCCRecorder", func() {
			for i := range 100 {
				if i%10 != 0 {
					rec.Record(seq, at)
				}
				seq++
				at += 1000
			}
			buf, _ = rec.AppendFeedback(buf[:0], 1, 2)
		}},
	} {
		if allocs := testing.AllocsPerRun(100, tc.fn); allocs != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, allocs)
		}
	}
	if sum == 0 || len(buf) == 0 {
		t.Fatal("nothing was parsed or built")
	}
}
