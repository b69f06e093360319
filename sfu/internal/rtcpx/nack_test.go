package rtcpx

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/rtcp"
)

// lostOf is every sequence number a pion NACK names, in its order.
func lostOf(n *rtcp.TransportLayerNack) []uint16 {
	var out []uint16
	for _, p := range n.Nacks {
		out = append(out, p.PacketList()...)
	}
	return out
}

func TestParseNACKAgainstPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 100 {
		pairs := make([]rtcp.NackPair, 1+rng.IntN(20))
		for i := range pairs {
			pairs[i] = rtcp.NackPair{PacketID: uint16(rng.Uint32()), LostPackets: rtcp.PacketBitmap(rng.Uint32())}
		}
		pn := &rtcp.TransportLayerNack{SenderSSRC: rng.Uint32(), MediaSSRC: rng.Uint32(), Nacks: pairs}
		n, err := ParseNACK(pionMarshal(t, pn))
		if err != nil || n.SenderSSRC != pn.SenderSSRC || n.MediaSSRC != pn.MediaSSRC || n.Pairs.Len() != len(pairs) {
			t.Fatalf("ParseNACK = %+v, %v", n, err)
		}
		for i, p := range pairs {
			if got := n.Pairs.At(i); got.PID != p.PacketID || got.BLP != uint16(p.LostPackets) {
				t.Fatalf("pair %d = %+v, want %+v", i, got, p)
			}
		}
		var visited []uint16
		n.VisitLost(func(seq uint16) { visited = append(visited, seq) })
		if want := lostOf(pn); !slices.Equal(visited, want) {
			t.Fatalf("VisitLost = %v, want %v", visited, want)
		}
	}
}

func TestAppendNACK(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		name string
		lost []uint16
	}{
		{"one", []uint16{5}},
		{"run of 17", []uint16{100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116}},
		{"run of 18", []uint16{100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117}},
		{"wrap", []uint16{65533, 65535, 0, 3, 12}},
		{"sparse", []uint16{1, 20, 40, 41, 60}},
		{"duplicates", []uint16{7, 7, 8, 7, 30, 8}},
		{"descending", []uint16{50, 40, 30, 20, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkNACK(t, tc.lost) })
	}
	for range 300 {
		// Random: a base, mostly ascending with gaps, shuffled a little,
		// some duplicates.
		base := uint16(rng.Uint32())
		var lost []uint16
		for i, s := 0, base; i < 1+rng.IntN(200); i++ {
			s += uint16(1 + rng.IntN(30))
			lost = append(lost, s)
			if rng.IntN(10) == 0 {
				lost = append(lost, lost[rng.IntN(len(lost))])
			}
		}
		if rng.IntN(3) == 0 {
			rng.Shuffle(len(lost), func(i, j int) { lost[i], lost[j] = lost[j], lost[i] })
		}
		checkNACK(t, lost)
	}
	if b := AppendNACK([]byte{1}, 1, 2, nil); len(b) != 1 {
		t.Fatalf("AppendNACK with nothing lost appended %d octets", len(b)-1)
	}
}

// checkNACK builds a NACK for lost and checks with pion that it names each
// number exactly once, and that for ascending unique input its pairs are
// pion's own packing.
func checkNACK(t *testing.T, lost []uint16) {
	t.Helper()
	b := AppendNACK(nil, 11, 22, lost)
	pn := pionUnmarshal(t, b)[0].(*rtcp.TransportLayerNack)
	if pn.SenderSSRC != 11 || pn.MediaSSRC != 22 {
		t.Fatalf("SSRCs %d %d", pn.SenderSSRC, pn.MediaSSRC)
	}
	got := lostOf(pn)
	seen := make(map[uint16]int)
	for _, s := range got {
		seen[s]++
	}
	for s, k := range seen {
		if k != 1 {
			t.Fatalf("%d reported %d times (input %v)", s, k, lost)
		}
	}
	want := make(map[uint16]bool)
	for _, s := range lost {
		want[s] = true
	}
	if len(seen) != len(want) {
		t.Fatalf("reported %d numbers, want %d (input %v, got %v)", len(seen), len(want), lost, got)
	}
	for s := range want {
		if seen[s] != 1 {
			t.Fatalf("%d lost but not reported", s)
		}
	}
	ascending := len(lost) > 0
	for i := 1; i < len(lost); i++ {
		if d := lost[i] - lost[i-1]; d == 0 || d >= 1<<15 {
			ascending = false
		}
	}
	if ascending {
		if wantPairs := rtcp.NackPairsFromSequenceNumbers(lost); !slices.Equal(pn.Nacks, wantPairs) {
			t.Fatalf("pairs %v, pion packs %v", pn.Nacks, wantPairs)
		}
	}
}

func TestParseNACKErrors(t *testing.T) {
	pli := AppendPLI(nil, 1, 2)
	if _, err := ParseNACK(pli); !errors.Is(err, ErrType) {
		t.Fatalf("ParseNACK of a PLI: %v", err)
	}
	short := []byte{0x80 | FmtNACK, TypeRTPFB, 0, 1, 0, 0, 0, 1}
	if _, err := ParseNACK(short); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseNACK without media SSRC: %v", err)
	}
}
