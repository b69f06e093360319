package rtcpx

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/rtcp"
)

func TestPLIAgainstPion(t *testing.T) {
	p, err := ParsePLI(pionMarshal(t, &rtcp.PictureLossIndication{SenderSSRC: 0x01020304, MediaSSRC: 0xa0b0c0d0}))
	if err != nil || p != (PLI{0x01020304, 0xa0b0c0d0}) {
		t.Fatalf("ParsePLI = %+v, %v", p, err)
	}
	got := pionUnmarshal(t, AppendPLI(nil, 5, 6))[0].(*rtcp.PictureLossIndication)
	if got.SenderSSRC != 5 || got.MediaSSRC != 6 {
		t.Fatalf("pion read %+v", got)
	}
	if _, err := ParsePLI(AppendFIR(nil, 1, []FIREntry{{SSRC: 2}})); !errors.Is(err, ErrType) {
		t.Fatalf("ParsePLI of a FIR: %v", err)
	}
}

func TestFIRAgainstPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 2, 5} {
		entries := make([]FIREntry, n)
		pionEntries := []rtcp.FIREntry{}
		for i := range entries {
			entries[i] = FIREntry{SSRC: rng.Uint32(), Seq: uint8(rng.Uint32())}
			pionEntries = append(pionEntries, rtcp.FIREntry{SSRC: entries[i].SSRC, SequenceNumber: entries[i].Seq})
		}
		f, err := ParseFIR(pionMarshal(t, &rtcp.FullIntraRequest{SenderSSRC: 7, FIR: pionEntries}))
		if err != nil || f.SenderSSRC != 7 || f.Entries.Len() != n {
			t.Fatalf("ParseFIR = %+v, %v", f, err)
		}
		for i := range entries {
			if f.Entries.At(i) != entries[i] {
				t.Fatalf("entry %d = %+v, want %+v", i, f.Entries.At(i), entries[i])
			}
		}
		got := pionUnmarshal(t, AppendFIR(nil, 8, entries))[0].(*rtcp.FullIntraRequest)
		if got.SenderSSRC != 8 || got.MediaSSRC != 0 || !slices.Equal(got.FIR, pionEntries) {
			t.Fatalf("pion read %+v, want entries %+v", got, pionEntries)
		}
	}
}

func TestAppendFIRNoEntries(t *testing.T) {
	if b := AppendFIR([]byte{1}, 1, nil); len(b) != 1 {
		t.Fatalf("AppendFIR with no entries appended %d octets", len(b)-1)
	}
}

func TestREMBAgainstPion(t *testing.T) {
	for _, tc := range []struct {
		bitrate uint64
		ssrcs   []uint32
	}{
		{0, nil},
		{1, []uint32{1}},
		{1<<18 - 1, []uint32{1, 2}},
		{1 << 18, []uint32{3}},
		{2_500_000, []uint32{4, 5, 6}},
		{123_456_789_012, nil},
		{math.MaxUint64, []uint32{7}},
	} {
		b, err := AppendREMB(nil, 99, tc.bitrate, tc.ssrcs)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseREMB(b)
		if err != nil {
			t.Fatal(err)
		}
		// Rounded down to 18 significant bits.
		if r.Bitrate > tc.bitrate || float64(tc.bitrate-r.Bitrate) > float64(tc.bitrate)/(1<<17) {
			t.Errorf("bitrate %d came back %d", tc.bitrate, r.Bitrate)
		}
		got := pionUnmarshal(t, b)[0].(*rtcp.ReceiverEstimatedMaximumBitrate)
		// pion reads a zero mantissa as 2^23 (it assumes IEEE 754's
		// implicit bit), so its bitrate is compared only when nonzero.
		if got.SenderSSRC != 99 || (r.Bitrate != 0 && float64(got.Bitrate) != float64(r.Bitrate)) || !slices.Equal(got.SSRCs, tc.ssrcs) {
			t.Errorf("pion read %+v, we read %d", got, r.Bitrate)
		}
		if r.SenderSSRC != 99 || r.SSRCs.Len() != len(tc.ssrcs) {
			t.Errorf("ParseREMB = %+v", r)
		}
		for i, s := range tc.ssrcs {
			if r.SSRCs.At(i) != s {
				t.Errorf("SSRC %d = %d, want %d", i, r.SSRCs.At(i), s)
			}
		}
		// And what pion builds.
		pb := pionMarshal(t, &rtcp.ReceiverEstimatedMaximumBitrate{SenderSSRC: 5, Bitrate: float32(r.Bitrate), SSRCs: tc.ssrcs})
		if r2, err := ParseREMB(pb); err != nil || r2.Bitrate != r.Bitrate || r2.SenderSSRC != 5 {
			t.Errorf("ParseREMB(pion's %d) = %+v, %v", r.Bitrate, r2, err)
		}
	}
	if _, err := AppendREMB(nil, 1, 1, make([]uint32, 256)); !errors.Is(err, ErrTooMany) {
		t.Fatalf("AppendREMB with 256 SSRCs: %v", err)
	}
}

func TestREMBErrors(t *testing.T) {
	b, _ := AppendREMB(nil, 1, 1000, []uint32{1, 2})
	notREMB := slices.Clone(b)
	copy(notREMB[12:], "ABCD")
	if _, err := ParseREMB(notREMB); !errors.Is(err, ErrType) {
		t.Fatalf("ParseREMB of another AFB message: %v", err)
	}
	tooMany := slices.Clone(b)
	tooMany[16] = 3
	if _, err := ParseREMB(tooMany); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseREMB with Num SSRC past the end: %v", err)
	}
	// The largest exponent saturates rather than wrapping.
	sat := slices.Clone(b)
	sat[17] = 63<<2 | 3
	if r, err := ParseREMB(sat); err != nil || r.Bitrate != math.MaxUint64 {
		t.Fatalf("ParseREMB exponent 63 = %d, %v", r.Bitrate, err)
	}
}
