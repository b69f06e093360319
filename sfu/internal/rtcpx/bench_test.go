package rtcpx

import (
	"testing"

	"github.com/pion/rtcp"
)

// typicalCompound is what a publisher sends every second or so: an SR
// with one report block and an SDES with its CNAME.
func typicalCompound(b *testing.B) []byte {
	c, err := AppendSR(nil, SenderInfo{SSRC: 1, NTPTime: 2, RTPTime: 3, PacketCount: 4, OctetCount: 5},
		[]ReportBlock{{SSRC: 2, FractionLost: 3, TotalLost: 4, ExtHighestSeq: 5, Jitter: 6, LSR: 7, DLSR: 8}})
	if err != nil {
		b.Fatal(err)
	}
	if c, err = AppendSDES(c, 1, "{8f2b1c4e-6a3d-4b7e-9f10-2c5d8e7a1b3c}"); err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkParseCompound walks an SR+SDES and reads the SR and its report
// block; pion is pion/rtcp's Unmarshal of the same bytes, for scale.
func BenchmarkParseCompound(b *testing.B) {
	c := typicalCompound(b)
	b.Run("rtcpx", func(b *testing.B) {
		b.ReportAllocs()
		var sum uint32
		for b.Loop() {
			it := Packets(c)
			for it.Next() {
				if it.Header().Type == TypeSR {
					sr, err := ParseSR(it.Packet())
					if err != nil {
						b.Fatal(err)
					}
					sum += sr.RTPTime + sr.Reports.At(0).Jitter
				}
			}
		}
		_ = sum
	})
	b.Run("pion", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := rtcp.Unmarshal(c); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendRR builds an RR with two report blocks into a reused
// buffer.
func BenchmarkAppendRR(b *testing.B) {
	blocks := []ReportBlock{{SSRC: 2, ExtHighestSeq: 5, Jitter: 6}, {SSRC: 3, ExtHighestSeq: 7, Jitter: 8}}
	buf := make([]byte, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendRR(buf[:0], 1, blocks)
	}
}

// BenchmarkTWCCFeedback records 100 arrivals (100 ms of a 1,000 packet/s
// publisher, 1 in 20 lost, some reordered) and builds their feedback: an op
// is one feedback interval.
func BenchmarkTWCCFeedback(b *testing.B) {
	r := new(TWCCRecorder)
	buf := make([]byte, 0, 1500)
	var seq uint16
	var at int64
	b.ReportAllocs()
	for b.Loop() {
		for i := range 100 {
			s := seq
			if i%10 == 4 {
				s++ // swapped with the next
			} else if i%10 == 5 {
				s--
			}
			if i%20 != 7 {
				r.Record(s, at)
			}
			seq++
			at += 1000
		}
		buf, _ = r.AppendFeedback(buf[:0], 1, 2)
	}
}

// BenchmarkParseTWCC parses and visits the feedback BenchmarkTWCCFeedback
// builds.
func BenchmarkParseTWCC(b *testing.B) {
	r := new(TWCCRecorder)
	for i := range 100 {
		if i%20 != 7 {
			r.Record(uint16(i), int64(i)*1000)
		}
	}
	p, _ := r.AppendFeedback(nil, 1, 2)
	b.ReportAllocs()
	var sum int
	for b.Loop() {
		tw, err := ParseTWCC(p)
		if err != nil {
			b.Fatal(err)
		}
		tw.Visit(func(_ uint16, _ bool, delta int) { sum += delta })
	}
	_ = sum
}
