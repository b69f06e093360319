package rtcpx

import "encoding/binary"

// reportBlockLen is the size of a report block (RFC 3550 §6.4.1).
const reportBlockLen = 24

// maxReports is the most report blocks one SR or RR counts: RC is 5 bits.
const maxReports = 31

// ReportBlock is one reception report block of an SR or RR
// (RFC 3550 §6.4.1): what the reporter received from one source.
type ReportBlock struct {
	SSRC          uint32 // the source this block reports on
	FractionLost  uint8  // packets lost since the last report, in 1/256ths
	TotalLost     int32  // cumulative packets lost, a signed 24-bit number (duplicates make it negative)
	ExtHighestSeq uint32 // extended highest sequence number received
	Jitter        uint32 // interarrival jitter, in timestamp units
	LSR           uint32 // middle 32 bits of the last SR's NTP timestamp
	DLSR          uint32 // delay since that SR, in 1/65536 s
}

// ReportBlocks is a view of a packet's report blocks.
type ReportBlocks struct {
	b []byte // a whole number of blocks
}

// Len returns the number of report blocks.
func (r ReportBlocks) Len() int { return len(r.b) / reportBlockLen }

// At returns block i, 0 ≤ i < Len.
func (r ReportBlocks) At(i int) ReportBlock {
	b := r.b[i*reportBlockLen : (i+1)*reportBlockLen]
	return ReportBlock{
		SSRC:          binary.BigEndian.Uint32(b),
		FractionLost:  b[4],
		TotalLost:     int32(binary.BigEndian.Uint32(b[4:])<<8) >> 8,
		ExtHighestSeq: binary.BigEndian.Uint32(b[8:]),
		Jitter:        binary.BigEndian.Uint32(b[12:]),
		LSR:           binary.BigEndian.Uint32(b[16:]),
		DLSR:          binary.BigEndian.Uint32(b[20:]),
	}
}

// reportBlocks returns the view of the count blocks at the start of b.
func reportBlocks(b []byte, count int) (ReportBlocks, error) {
	if len(b) < count*reportBlockLen {
		return ReportBlocks{}, ErrTruncated
	}
	return ReportBlocks{b[:count*reportBlockLen]}, nil
}

// appendReportBlocks appends rs. TotalLost is clamped to the 24-bit range,
// as RFC 3550 §A.3 says, rather than wrapped.
func appendReportBlocks(dst []byte, rs []ReportBlock) []byte {
	for _, r := range rs {
		lost := min(max(r.TotalLost, -1<<23), 1<<23-1)
		dst = binary.BigEndian.AppendUint32(dst, r.SSRC)
		dst = binary.BigEndian.AppendUint32(dst, uint32(r.FractionLost)<<24|uint32(lost)&0xffffff)
		dst = binary.BigEndian.AppendUint32(dst, r.ExtHighestSeq)
		dst = binary.BigEndian.AppendUint32(dst, r.Jitter)
		dst = binary.BigEndian.AppendUint32(dst, r.LSR)
		dst = binary.BigEndian.AppendUint32(dst, r.DLSR)
	}
	return dst
}
