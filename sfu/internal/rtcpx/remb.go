package rtcpx

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// rembID is the unique identifier that marks an application layer feedback
// message as REMB (draft-alvestrand-rmcat-remb-03 §2.2).
var rembID = [4]byte{'R', 'E', 'M', 'B'}

// REMB is a parsed Receiver Estimated Maximum Bitrate message
// (draft-alvestrand-rmcat-remb-03 §2.2): the total bitrate the receiver
// estimates it can take for the listed streams.
type REMB struct {
	SenderSSRC uint32
	Bitrate    uint64 // bits per second: the mantissa shifted by the exponent, saturated at MaxUint64
	SSRCs      SSRCs
}

// SSRCs is a view of a list of 32-bit SSRCs.
type SSRCs struct {
	b []byte // a whole number of 4-octet SSRCs
}

// Len returns the number of SSRCs.
func (s SSRCs) Len() int { return len(s.b) / 4 }

// At returns SSRC i, 0 ≤ i < Len.
func (s SSRCs) At(i int) uint32 { return binary.BigEndian.Uint32(s.b[4*i:]) }

// ParseREMB parses the REMB at the start of p. An application layer
// feedback packet without the "REMB" identifier is ErrType.
func ParseREMB(p []byte) (REMB, error) {
	_, b, err := payload(p, TypePSFB, FmtAFB)
	if err != nil {
		return REMB{}, err
	}
	if len(b) < 16 {
		return REMB{}, ErrTruncated
	}
	if [4]byte(b[8:12]) != rembID {
		return REMB{}, ErrType
	}
	num := int(b[12])
	if len(b) < 16+4*num {
		return REMB{}, ErrTruncated
	}
	exp := uint(b[13] >> 2)
	mantissa := uint64(b[13]&3)<<16 | uint64(b[14])<<8 | uint64(b[15])
	bitrate := mantissa << exp
	if bits.Len64(mantissa)+int(exp) > 64 {
		bitrate = math.MaxUint64
	}
	return REMB{
		SenderSSRC: binary.BigEndian.Uint32(b),
		Bitrate:    bitrate,
		SSRCs:      SSRCs{b[16 : 16+4*num]},
	}, nil
}

// AppendREMB appends a REMB from senderSSRC for the given streams (at most
// 255) to dst. bitrate is encoded as an 18-bit mantissa and a 6-bit
// exponent, rounded down: what the receiver reads is at most bitrate and
// within 1/2^17 of it.
func AppendREMB(dst []byte, senderSSRC uint32, bitrate uint64, ssrcs []uint32) ([]byte, error) {
	if len(ssrcs) > math.MaxUint8 {
		return dst, ErrTooMany
	}
	exp := 0
	for bitrate >= 1<<18 {
		bitrate >>= 1
		exp++
	}
	start := len(dst)
	dst = appendHeader(dst, FmtAFB, TypePSFB)
	dst = binary.BigEndian.AppendUint32(dst, senderSSRC)
	dst = binary.BigEndian.AppendUint32(dst, 0) // media source: unused (§2.2)
	dst = append(dst, rembID[:]...)
	dst = append(dst, byte(len(ssrcs)), byte(exp<<2)|byte(bitrate>>16), byte(bitrate>>8), byte(bitrate))
	for _, s := range ssrcs {
		dst = binary.BigEndian.AppendUint32(dst, s)
	}
	return finish(dst, start), nil
}
