package rtcpx

import (
	"errors"
	"testing"

	"github.com/pion/rtcp"
)

// pionMarshal is rtcp.Marshal that fails the test on error.
func pionMarshal(t testing.TB, ps ...rtcp.Packet) []byte {
	t.Helper()
	b, err := rtcp.Marshal(ps)
	if err != nil {
		t.Fatalf("rtcp.Marshal: %v", err)
	}
	return b
}

// pionUnmarshal is rtcp.Unmarshal that fails the test on error.
func pionUnmarshal(t testing.TB, b []byte) []rtcp.Packet {
	t.Helper()
	ps, err := rtcp.Unmarshal(b)
	if err != nil {
		t.Fatalf("rtcp.Unmarshal(%x): %v", b, err)
	}
	return ps
}

func TestPacketsWalksCompound(t *testing.T) {
	ps := []rtcp.Packet{
		&rtcp.SenderReport{SSRC: 1, NTPTime: 2, RTPTime: 3, PacketCount: 4, OctetCount: 5,
			Reports: []rtcp.ReceptionReport{{SSRC: 9}}},
		&rtcp.SourceDescription{Chunks: []rtcp.SourceDescriptionChunk{{Source: 1,
			Items: []rtcp.SourceDescriptionItem{{Type: rtcp.SDESCNAME, Text: "cname"}}}}},
		&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 7}}},
		&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2},
		&rtcp.Goodbye{Sources: []uint32{1}},
	}
	b := pionMarshal(t, ps...)
	type want struct {
		typ, count uint8
	}
	wants := []want{{TypeSR, 1}, {TypeSDES, 1}, {TypeRTPFB, FmtNACK}, {TypePSFB, FmtPLI}, {TypeBYE, 1}}
	it := Packets(b)
	off, i := 0, 0
	for it.Next() {
		h, p := it.Header(), it.Packet()
		if i >= len(wants) {
			t.Fatalf("more than %d packets", len(wants))
		}
		if h.Type != wants[i].typ || h.Count != wants[i].count || h.Padding {
			t.Errorf("packet %d header %+v, want type %d count %d", i, h, wants[i].typ, wants[i].count)
		}
		single := pionMarshal(t, ps[i])
		if h.Length != len(single) || len(p) != len(single) || &p[0] != &b[off] {
			t.Errorf("packet %d: length %d, %d octets at %d; want %d in place", i, h.Length, len(p), off, len(single))
		}
		off += len(p)
		i++
	}
	if it.Err() != nil || i != len(wants) || off != len(b) {
		t.Fatalf("walk ended after %d packets, %d of %d octets: %v", i, off, len(b), it.Err())
	}
}

func TestPacketsReducedSize(t *testing.T) {
	// RFC 5506: a PLI on its own, with no RR first.
	b := pionMarshal(t, &rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: 2})
	it := Packets(b)
	if !it.Next() || it.Header().Type != TypePSFB || it.Next() || it.Err() != nil {
		t.Fatalf("walking a lone PLI: %+v, %v", it.Header(), it.Err())
	}
}

func TestPacketsMalformed(t *testing.T) {
	good := pionMarshal(t, &rtcp.ReceiverReport{SSRC: 1})
	padded := append([]byte{0xa0, TypeRR, 0, 2}, 0, 0, 0, 1, 0, 0, 0, 4)
	for _, tc := range []struct {
		name string
		b    []byte
		good int // packets before the error
		err  error
	}{
		{"short header", append(good[:len(good):len(good)], 0x80, TypeRR), 1, ErrTruncated},
		{"length past end", append(good[:len(good):len(good)], 0x80, TypeRR, 0, 9, 0, 0, 0, 0), 1, ErrTruncated},
		{"version 1", []byte{0x40, TypeRR, 0, 1, 0, 0, 0, 1}, 0, ErrVersion},
		{"padding count 0", []byte{0xa0, TypeRR, 0, 1, 0, 0, 0, 0}, 0, ErrPadding},
		{"padding count past payload", []byte{0xa0, TypeRR, 0, 1, 0, 0, 0, 5}, 0, ErrPadding},
		{"padding ok", padded, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := Packets(tc.b)
			n := 0
			for it.Next() {
				n++
			}
			if n != tc.good || !errors.Is(it.Err(), tc.err) {
				t.Fatalf("%d packets, err %v; want %d, %v", n, it.Err(), tc.good, tc.err)
			}
			if it.Next() {
				t.Fatal("Next after the end")
			}
		})
	}
}

func TestPaddingStripped(t *testing.T) {
	// An RR with one word of padding: the SSRC, then 0 0 0 4.
	p := []byte{0xa0, TypeRR, 0, 2, 0, 0, 0, 7, 0, 0, 0, 4}
	rr, err := ParseRR(p)
	if err != nil || rr.SSRC != 7 || rr.Reports.Len() != 0 {
		t.Fatalf("ParseRR = %+v, %v", rr, err)
	}
	// RC=1 needs a block, which the padding must not stand in for.
	p = append([]byte{0xa1, TypeRR, 0, 7, 0, 0, 0, 7}, make([]byte, 24)...)
	p[len(p)-1] = 24
	if _, err := ParseRR(p); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ParseRR of a block made of padding: %v, want ErrTruncated", err)
	}
}
