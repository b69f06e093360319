package rtcpx

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtcp"
)

// randomBlocks returns n report blocks with random fields, TotalLost within
// the signed 24-bit range.
func randomBlocks(rng *rand.Rand, n int) []ReportBlock {
	rs := make([]ReportBlock, n)
	for i := range rs {
		rs[i] = ReportBlock{
			SSRC:          rng.Uint32(),
			FractionLost:  uint8(rng.Uint32()),
			TotalLost:     rng.Int32N(1<<24) - 1<<23,
			ExtHighestSeq: rng.Uint32(),
			Jitter:        rng.Uint32(),
			LSR:           rng.Uint32(),
			DLSR:          rng.Uint32(),
		}
	}
	return rs
}

// toPion converts report blocks to pion's, TotalLost as its 24 bits.
func toPion(rs []ReportBlock) []rtcp.ReceptionReport {
	var out []rtcp.ReceptionReport
	for _, r := range rs {
		out = append(out, rtcp.ReceptionReport{
			SSRC: r.SSRC, FractionLost: r.FractionLost, TotalLost: uint32(r.TotalLost) & 0xffffff,
			LastSequenceNumber: r.ExtHighestSeq, Jitter: r.Jitter, LastSenderReport: r.LSR, Delay: r.DLSR,
		})
	}
	return out
}

// checkBlocks compares a view with the blocks it should hold.
func checkBlocks(t *testing.T, got ReportBlocks, want []ReportBlock) {
	t.Helper()
	if got.Len() != len(want) {
		t.Fatalf("%d report blocks, want %d", got.Len(), len(want))
	}
	for i := range want {
		if got.At(i) != want[i] {
			t.Errorf("block %d = %+v, want %+v", i, got.At(i), want[i])
		}
	}
}

func TestSRAgainstPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 31} {
		s := SenderInfo{SSRC: rng.Uint32(), NTPTime: rng.Uint64(), RTPTime: rng.Uint32(),
			PacketCount: rng.Uint32(), OctetCount: rng.Uint32()}
		rs := randomBlocks(rng, n)
		pionSR := &rtcp.SenderReport{SSRC: s.SSRC, NTPTime: s.NTPTime, RTPTime: s.RTPTime,
			PacketCount: s.PacketCount, OctetCount: s.OctetCount, Reports: toPion(rs)}

		// Parse what pion built.
		sr, err := ParseSR(pionMarshal(t, pionSR))
		if err != nil || sr.SenderInfo != s {
			t.Fatalf("ParseSR = %+v, %v; want %+v", sr.SenderInfo, err, s)
		}
		checkBlocks(t, sr.Reports, rs)

		// Pion parses what we build, appended after other bytes.
		b, err := AppendSR([]byte{1, 2, 3}, s, rs)
		if err != nil {
			t.Fatal(err)
		}
		got := pionUnmarshal(t, b[3:])[0].(*rtcp.SenderReport)
		if got.SSRC != s.SSRC || got.NTPTime != s.NTPTime || got.RTPTime != s.RTPTime ||
			got.PacketCount != s.PacketCount || got.OctetCount != s.OctetCount {
			t.Fatalf("pion read %+v, want %+v", got, s)
		}
		if len(got.Reports) != n || (n > 0 && got.Reports[n-1] != toPion(rs)[n-1]) {
			t.Fatalf("pion read reports %+v, want %+v", got.Reports, toPion(rs))
		}
	}
	if _, err := AppendSR(nil, SenderInfo{}, make([]ReportBlock, 32)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("AppendSR with 32 blocks: %v", err)
	}
}

func TestRRAgainstPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 5, 31} {
		ssrc, rs := rng.Uint32(), randomBlocks(rng, n)
		rr, err := ParseRR(pionMarshal(t, &rtcp.ReceiverReport{SSRC: ssrc, Reports: toPion(rs)}))
		if err != nil || rr.SSRC != ssrc {
			t.Fatalf("ParseRR = %+v, %v", rr, err)
		}
		checkBlocks(t, rr.Reports, rs)

		b, err := AppendRR(nil, ssrc, rs)
		if err != nil {
			t.Fatal(err)
		}
		got := pionUnmarshal(t, b)[0].(*rtcp.ReceiverReport)
		if got.SSRC != ssrc || len(got.Reports) != n {
			t.Fatalf("pion read %+v", got)
		}
		for i, r := range toPion(rs) {
			if got.Reports[i] != r {
				t.Errorf("pion read block %d = %+v, want %+v", i, got.Reports[i], r)
			}
		}
	}
	if _, err := AppendRR(nil, 1, make([]ReportBlock, 32)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("AppendRR with 32 blocks: %v", err)
	}
}

// TestTotalLost checks the signed 24-bit field both ways, and the clamping
// RFC 3550 §A.3 asks for instead of wrapping.
func TestTotalLost(t *testing.T) {
	for _, tc := range []struct{ in, want int32 }{
		{0, 0}, {1, 1}, {-1, -1}, {1<<23 - 1, 1<<23 - 1}, {-1 << 23, -1 << 23},
		{1 << 23, 1<<23 - 1}, {1 << 30, 1<<23 - 1}, {-1<<23 - 1, -1 << 23}, {-1 << 31, -1 << 23},
	} {
		b, err := AppendRR(nil, 1, []ReportBlock{{SSRC: 2, FractionLost: 0xff, TotalLost: tc.in}})
		if err != nil {
			t.Fatal(err)
		}
		rr, err := ParseRR(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := rr.Reports.At(0); got.TotalLost != tc.want || got.FractionLost != 0xff {
			t.Errorf("TotalLost %d came back %d (fraction %d), want %d", tc.in, got.TotalLost, got.FractionLost, tc.want)
		}
		if got := pionUnmarshal(t, b)[0].(*rtcp.ReceiverReport).Reports[0].TotalLost; got != uint32(tc.want)&0xffffff {
			t.Errorf("pion read TotalLost %#x for %d", got, tc.in)
		}
	}
}

func TestReportsTruncated(t *testing.T) {
	b, _ := AppendRR(nil, 1, randomBlocks(rand.New(rand.NewPCG(5, 6)), 2))
	b[0] = b[0]&^0x1f | 3 // claims 3 blocks, holds 2
	if _, err := ParseRR(b); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseRR with RC past the blocks: %v", err)
	}
	sr, _ := AppendSR(nil, SenderInfo{SSRC: 1}, nil)
	if _, err := ParseSR(sr[:4]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseSR of a header only: %v", err)
	}
	if _, err := ParseRR(sr); !errors.Is(err, ErrType) {
		t.Fatalf("ParseRR of an SR: %v", err)
	}
}

func TestSDESAgainstPion(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 16, 254, 255} {
		cname := make([]byte, n)
		for i := range cname {
			cname[i] = 'a' + byte(i%26)
		}
		b, err := AppendSDES(nil, 0xdeadbeef, string(cname))
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%4 != 0 {
			t.Fatalf("CNAME of %d: %d octets, not whole words", n, len(b))
		}
		sdes := pionUnmarshal(t, b)[0].(*rtcp.SourceDescription)
		if len(sdes.Chunks) != 1 || sdes.Chunks[0].Source != 0xdeadbeef || len(sdes.Chunks[0].Items) != 1 {
			t.Fatalf("CNAME of %d: pion read %+v", n, sdes)
		}
		if it := sdes.Chunks[0].Items[0]; it.Type != rtcp.SDESCNAME || it.Text != string(cname) {
			t.Fatalf("CNAME of %d: pion read item %+v", n, it)
		}
		// Same octets as pion's own encoding.
		if want := pionMarshal(t, sdes); string(want) != string(b) {
			t.Fatalf("CNAME of %d: %x, pion makes %x", n, b, want)
		}
	}
	if _, err := AppendSDES(nil, 1, string(make([]byte, 256))); !errors.Is(err, ErrTooLong) {
		t.Fatalf("CNAME of 256: %v", err)
	}
}
