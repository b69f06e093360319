package rtcpx

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/rtcp"
)

// twccStatus is one packet's entry in a TWCC feedback.
type twccStatus struct {
	seq      uint16
	received bool
	delta    int // multiples of 250 µs
}

// pionStatuses lists the statuses of a feedback packet as pion parsed it.
func pionStatuses(t testing.TB, fb *rtcp.TransportLayerCC) []twccStatus {
	t.Helper()
	var out []twccStatus
	seq, left, d := fb.BaseSequenceNumber, int(fb.PacketStatusCount), 0
	for _, c := range fb.PacketChunks {
		var syms []uint16
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range min(int(c.RunLength), left) {
				syms = append(syms, c.PacketStatusSymbol)
			}
		case *rtcp.StatusVectorChunk:
			syms = c.SymbolList[:min(len(c.SymbolList), left)]
		}
		for _, s := range syms {
			st := twccStatus{seq: seq}
			if s == rtcp.TypeTCCPacketReceivedSmallDelta || s == rtcp.TypeTCCPacketReceivedLargeDelta {
				rd := fb.RecvDeltas[d]
				if rd.Type != s {
					t.Fatalf("seq %d: delta type %d for symbol %d", seq, rd.Type, s)
				}
				st.received, st.delta = true, int(rd.Delta/rtcp.TypeTCCDeltaScaleFactor)
				d++
			}
			out = append(out, st)
			seq++
			left--
		}
	}
	if left != 0 || d != len(fb.RecvDeltas) {
		t.Fatalf("pion's chunks left %d statuses and %d deltas unaccounted", left, len(fb.RecvDeltas)-d)
	}
	return out
}

// ourStatuses lists the statuses of a feedback packet as ParseTWCC reads it.
func ourStatuses(t testing.TB, p []byte) (TWCC, []twccStatus) {
	t.Helper()
	fb, err := ParseTWCC(p)
	if err != nil {
		t.Fatalf("ParseTWCC(%x): %v", p, err)
	}
	var out []twccStatus
	fb.Visit(func(seq uint16, received bool, delta int) {
		out = append(out, twccStatus{seq, received, delta})
	})
	return fb, out
}

// randomPionTWCC makes a feedback packet with pion's types: random
// statuses packed into a random mix of run length, one-bit and two-bit
// vector chunks, so that the parser meets every kind.
func randomPionTWCC(rng *rand.Rand) (*rtcp.TransportLayerCC, []twccStatus) {
	n := 1 + rng.IntN(300)
	base := uint16(rng.Uint32())
	want := make([]twccStatus, n)
	syms := make([]uint16, n)
	for i := range want {
		want[i].seq = base + uint16(i)
		switch k := rng.IntN(10); {
		case k < 3: // not received, often in runs
			if i > 0 && rng.IntN(2) == 0 {
				syms[i] = syms[i-1]
			}
		case k < 8:
			syms[i] = rtcp.TypeTCCPacketReceivedSmallDelta
		default:
			syms[i] = rtcp.TypeTCCPacketReceivedLargeDelta
		}
	}
	fb := &rtcp.TransportLayerCC{
		SenderSSRC: rng.Uint32(), MediaSSRC: rng.Uint32(),
		BaseSequenceNumber: base, PacketStatusCount: uint16(n),
		ReferenceTime: rng.Uint32() & 0xffffff, FbPktCount: uint8(rng.Uint32()),
	}
	for i := 0; i < n; {
		switch rng.IntN(3) {
		case 0: // run length: the run of equal symbols from i
			j := i + 1
			for j < n && syms[j] == syms[i] {
				j++
			}
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.RunLengthChunk{
				PacketStatusSymbol: syms[i], RunLength: uint16(j - i)})
			i = j
		case 1: // one-bit vector, if the next 14 have no large delta
			list := make([]uint16, 14)
			ok := true
			for k := 0; k < 14 && i+k < n; k++ {
				ok = ok && syms[i+k] != rtcp.TypeTCCPacketReceivedLargeDelta
				list[k] = syms[i+k]
			}
			if !ok {
				continue
			}
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{
				SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: list})
			i += 14
		default: // two-bit vector
			list := make([]uint16, 7)
			copy(list, syms[i:min(i+7, n)])
			fb.PacketChunks = append(fb.PacketChunks, &rtcp.StatusVectorChunk{
				SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: list})
			i += 7
		}
	}
	for i, s := range syms {
		var d int
		switch s {
		case rtcp.TypeTCCPacketReceivedSmallDelta:
			d = rng.IntN(256)
		case rtcp.TypeTCCPacketReceivedLargeDelta:
			d = rng.IntN(1<<16) - 1<<15
		default:
			continue
		}
		want[i].received, want[i].delta = true, d
		fb.RecvDeltas = append(fb.RecvDeltas, &rtcp.RecvDelta{Type: s, Delta: int64(d) * rtcp.TypeTCCDeltaScaleFactor})
	}
	return fb, want
}

func TestParseTWCCAgainstPion(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for range 500 {
		fb, want := randomPionTWCC(rng)
		size := fb.MarshalSize()
		fb.Header = rtcp.Header{Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback, Length: uint16(size/4 - 1)}
		b := pionMarshal(t, fb)
		got, statuses := ourStatuses(t, b)
		if got.SenderSSRC != fb.SenderSSRC || got.MediaSSRC != fb.MediaSSRC || got.BaseSeq != fb.BaseSequenceNumber ||
			got.StatusCount != fb.PacketStatusCount || got.RefTime != fb.ReferenceTime || got.FeedbackCount != fb.FbPktCount {
			t.Fatalf("ParseTWCC = %+v, pion built %+v", got, fb)
		}
		if !slices.Equal(statuses, want) {
			t.Fatalf("statuses differ:\n got %v\nwant %v", statuses, want)
		}
	}
}

// twccPacket builds a TWCC feedback packet by hand: the fixed fields with
// base 10 and the given status count, then tail, zero-padded to a word.
func twccPacket(count uint16, tail ...byte) []byte {
	b := []byte{0x80 | FmtTWCC, TypeRTPFB, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2,
		0, 10, byte(count >> 8), byte(count), 0, 0, 1, 7}
	b = append(b, tail...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b[3] = byte(len(b)/4 - 1)
	return b
}

func TestParseTWCCErrors(t *testing.T) {
	if _, st := ourStatuses(t, twccPacket(1, 0x20, 0x01, 7)); !slices.Equal(st, []twccStatus{{10, true, 7}}) {
		t.Fatalf("one received packet read as %v", st)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"reserved symbol in a run", twccPacket(1, 0x60, 0x01, 7), ErrMalformed},
		{"reserved symbol in a vector", twccPacket(1, 0xf0, 0x00, 7), ErrMalformed},
		{"chunks short of the count", twccPacket(20, 0x20, 0x01), ErrTruncated},
		{"small deltas short", twccPacket(3, 0x20, 0x03, 1, 2), ErrTruncated},
		{"large deltas short", twccPacket(3, 0x40, 0x03, 0, 1), ErrTruncated},
		{"fixed part short", twccPacket(1)[:16], ErrTruncated},
		{"NACK", append([]byte{0x80 | FmtNACK}, twccPacket(1, 0x20, 0x01, 7)[1:]...), ErrType},
		{"PSFB FMT 15", append([]byte{0x80 | FmtTWCC, TypePSFB}, twccPacket(1, 0x20, 0x01, 7)[2:]...), ErrType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "fixed part short" {
				tc.b[3] = 3
			}
			if _, err := ParseTWCC(tc.b); !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}
