package rtcpx

import "encoding/binary"

// PLI is a parsed Picture Loss Indication (RFC 4585 §6.3.1): the media
// sender is asked for a keyframe.
type PLI struct {
	SenderSSRC uint32
	MediaSSRC  uint32
}

// ParsePLI parses the PLI at the start of p.
func ParsePLI(p []byte) (PLI, error) {
	_, b, err := payload(p, TypePSFB, FmtPLI)
	if err != nil {
		return PLI{}, err
	}
	if len(b) < 8 {
		return PLI{}, ErrTruncated
	}
	return PLI{SenderSSRC: binary.BigEndian.Uint32(b), MediaSSRC: binary.BigEndian.Uint32(b[4:])}, nil
}

// AppendPLI appends a PLI from senderSSRC about mediaSSRC to dst.
func AppendPLI(dst []byte, senderSSRC, mediaSSRC uint32) []byte {
	start := len(dst)
	dst = appendHeader(dst, FmtPLI, TypePSFB)
	dst = binary.BigEndian.AppendUint32(dst, senderSSRC)
	dst = binary.BigEndian.AppendUint32(dst, mediaSSRC)
	return finish(dst, start)
}

// FIREntry is one FCI entry of a Full Intra Request (RFC 5104 §4.3.1.1):
// the stream asked for a decoder refresh and the request's command
// sequence number, which a repeated request keeps and a new one increments.
type FIREntry struct {
	SSRC uint32
	Seq  uint8
}

// FIREntries is a view of a FIR's entries.
type FIREntries struct {
	b []byte // a whole number of 8-octet entries
}

// Len returns the number of entries.
func (f FIREntries) Len() int { return len(f.b) / 8 }

// At returns entry i, 0 ≤ i < Len.
func (f FIREntries) At(i int) FIREntry {
	return FIREntry{SSRC: binary.BigEndian.Uint32(f.b[8*i:]), Seq: f.b[8*i+4]}
}

// FIR is a parsed Full Intra Request (RFC 5104 §4.3.1). Its media source
// SSRC field is unused (§4.3.1.2); the streams are in the entries.
type FIR struct {
	SenderSSRC uint32
	Entries    FIREntries
}

// ParseFIR parses the FIR at the start of p.
func ParseFIR(p []byte) (FIR, error) {
	_, b, err := payload(p, TypePSFB, FmtFIR)
	if err != nil {
		return FIR{}, err
	}
	if len(b) < 8 {
		return FIR{}, ErrTruncated
	}
	fci := b[8:]
	return FIR{SenderSSRC: binary.BigEndian.Uint32(b), Entries: FIREntries{fci[:len(fci)/8*8]}}, nil
}

// AppendFIR appends a FIR from senderSSRC with the given entries to dst,
// with the media source SSRC 0 as RFC 5104 §4.3.1.2 says; or nothing if
// there are no entries, since a FIR needs one (§4.3.1.1).
func AppendFIR(dst []byte, senderSSRC uint32, entries []FIREntry) []byte {
	if len(entries) == 0 {
		return dst
	}
	start := len(dst)
	dst = appendHeader(dst, FmtFIR, TypePSFB)
	dst = binary.BigEndian.AppendUint32(dst, senderSSRC)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	for _, e := range entries {
		dst = binary.BigEndian.AppendUint32(dst, e.SSRC)
		dst = append(dst, e.Seq, 0, 0, 0)
	}
	return finish(dst, start)
}
