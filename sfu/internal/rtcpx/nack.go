package rtcpx

import "encoding/binary"

// NACK is a parsed Generic NACK (RFC 4585 §6.2.1): the media sender is
// asked to resend the packets its pairs name.
type NACK struct {
	SenderSSRC uint32 // who asks
	MediaSSRC  uint32 // the stream whose packets were lost
	Pairs      NACKPairs
}

// NACKPair is one FCI entry of a Generic NACK: packet PID is lost, and so
// is packet PID+i+1 for each bit i set in BLP (RFC 4585 §6.2.1).
type NACKPair struct {
	PID uint16
	BLP uint16
}

// NACKPairs is a view of a NACK's FCI entries.
type NACKPairs struct {
	b []byte // a whole number of 4-octet entries
}

// Len returns the number of pairs.
func (n NACKPairs) Len() int { return len(n.b) / 4 }

// At returns pair i, 0 ≤ i < Len.
func (n NACKPairs) At(i int) NACKPair {
	return NACKPair{
		PID: binary.BigEndian.Uint16(n.b[4*i:]),
		BLP: binary.BigEndian.Uint16(n.b[4*i+2:]),
	}
}

// ParseNACK parses the Generic NACK at the start of p. A NACK without FCI
// entries, which RFC 4585 §6.1 does not allow, parses with no pairs.
func ParseNACK(p []byte) (NACK, error) {
	_, b, err := payload(p, TypeRTPFB, FmtNACK)
	if err != nil {
		return NACK{}, err
	}
	if len(b) < 8 {
		return NACK{}, ErrTruncated
	}
	fci := b[8:]
	return NACK{
		SenderSSRC: binary.BigEndian.Uint32(b),
		MediaSSRC:  binary.BigEndian.Uint32(b[4:]),
		Pairs:      NACKPairs{fci[:len(fci)/4*4]},
	}, nil
}

// VisitLost calls fn with each sequence number the NACK reports lost, pair
// by pair, PID first and then BLP's bits from the least significant. A
// sequence number named twice is visited twice.
func (n NACK) VisitLost(fn func(seq uint16)) {
	for i := range n.Pairs.Len() {
		p := n.Pairs.At(i)
		fn(p.PID)
		for bit := range uint16(16) {
			if p.BLP&(1<<bit) != 0 {
				fn(p.PID + bit + 1)
			}
		}
	}
}

// AppendNACK appends a Generic NACK reporting the sequence numbers in lost
// to dst, or nothing if lost is empty (a NACK needs at least one pair).
//
// lost may be in any order and hold duplicates: every sequence number in it
// is reported exactly once. It packs best, one pair per run of 17, when
// lost is ascending in RTP order (wrap-around included: 65535 then 0), as a
// loss tracker naturally keeps it. The packing looks each number up among
// the pairs already written, so it costs O(len(lost) × pairs).
func AppendNACK(dst []byte, senderSSRC, mediaSSRC uint32, lost []uint16) []byte {
	if len(lost) == 0 {
		return dst
	}
	start := len(dst)
	dst = appendHeader(dst, FmtNACK, TypeRTPFB)
	dst = binary.BigEndian.AppendUint32(dst, senderSSRC)
	dst = binary.BigEndian.AppendUint32(dst, mediaSSRC)
	fci := len(dst)
	for _, seq := range lost {
		if !markLost(dst[fci:], seq) {
			dst = binary.BigEndian.AppendUint16(dst, seq)
			dst = append(dst, 0, 0)
		}
	}
	return finish(dst, start)
}

// markLost records seq in the first pair of pairs that can hold it and
// reports whether one could. The first, not the last: a duplicate must find
// the pair its first occurrence went to, even if a later pair covers it too.
func markLost(pairs []byte, seq uint16) bool {
	for i := 0; i+4 <= len(pairs); i += 4 {
		d := seq - binary.BigEndian.Uint16(pairs[i:])
		if d == 0 {
			return true
		}
		if d <= 16 {
			blp := binary.BigEndian.Uint16(pairs[i+2:]) | 1<<(d-1)
			binary.BigEndian.PutUint16(pairs[i+2:], blp)
			return true
		}
	}
	return false
}
