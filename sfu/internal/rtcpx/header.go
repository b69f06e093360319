package rtcpx

import "encoding/binary"

// RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1).
const (
	TypeSR    = 200 // sender report
	TypeRR    = 201 // receiver report
	TypeSDES  = 202 // source description
	TypeBYE   = 203 // goodbye
	TypeAPP   = 204 // application-defined
	TypeRTPFB = 205 // transport-layer feedback
	TypePSFB  = 206 // payload-specific feedback
)

// Feedback message types, the FMT in a feedback packet's count field.
const (
	FmtNACK = 1  // RTPFB Generic NACK (RFC 4585 §6.2.1)
	FmtTWCC = 15 // RTPFB transport-wide CC feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1)
	FmtPLI  = 1  // PSFB Picture Loss Indication (RFC 4585 §6.3.1)
	FmtFIR  = 4  // PSFB Full Intra Request (RFC 5104 §4.3.1)
	FmtAFB  = 15 // PSFB application layer feedback (RFC 4585 §6.4), which REMB is
)

// headerLen is the size of the common RTCP header (RFC 3550 §6.4.1).
const headerLen = 4

// Header is an RTCP packet's common header (RFC 3550 §6.4.1).
type Header struct {
	Padding bool  // the packet ends in padding, whose last octet counts it
	Count   uint8 // report or source count, or the feedback message type (FMT)
	Type    uint8 // packet type (PT)
	Length  int   // the whole packet's length in octets, header and padding included
}

// ParseHeader reads the header at the start of b and checks that the packet
// it describes fits in b and that its padding count is sane.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < headerLen {
		return Header{}, ErrTruncated
	}
	if b[0]>>6 != 2 {
		return Header{}, ErrVersion
	}
	h := Header{
		Padding: b[0]&0x20 != 0,
		Count:   b[0] & 0x1f,
		Type:    b[1],
		Length:  4 * (int(binary.BigEndian.Uint16(b[2:])) + 1),
	}
	if h.Length > len(b) {
		return Header{}, ErrTruncated
	}
	if h.Padding {
		if pad := int(b[h.Length-1]); pad == 0 || pad > h.Length-headerLen {
			return Header{}, ErrPadding
		}
	}
	return h, nil
}

// payload checks that p is a packet of type typ (and, if count ≥ 0, of that
// count or FMT) and returns its header and the octets between the header
// and the padding. p may go on past the packet; the rest is ignored.
func payload(p []byte, typ uint8, count int) (Header, []byte, error) {
	h, err := ParseHeader(p)
	if err != nil {
		return h, nil, err
	}
	if h.Type != typ || (count >= 0 && int(h.Count) != count) {
		return h, nil, ErrType
	}
	end := h.Length
	if h.Padding {
		end -= int(p[end-1])
	}
	return h, p[headerLen:end], nil
}

// appendHeader starts a packet with a header whose length is filled in by
// finish.
func appendHeader(dst []byte, count, typ uint8) []byte {
	return append(dst, 0x80|count&0x1f, typ, 0, 0)
}

// finish fills in the length of the packet that starts at dst[start:]. The
// packet must be a whole number of 32-bit words long.
func finish(dst []byte, start int) []byte {
	binary.BigEndian.PutUint16(dst[start+2:], uint16((len(dst)-start)/4-1))
	return dst
}
