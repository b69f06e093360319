package rtcpx

import "encoding/binary"

// senderInfoLen is the size of an SR's sender SSRC and sender info
// (RFC 3550 §6.4.1).
const senderInfoLen = 24

// SenderInfo is what an SR says about its sender (RFC 3550 §6.4.1).
type SenderInfo struct {
	SSRC        uint32 // the sender
	NTPTime     uint64 // wallclock time of the report, NTP format (seconds since 1900 in 32.32 fixed point)
	RTPTime     uint32 // the same instant in the RTP timestamp's clock
	PacketCount uint32 // RTP packets sent since the start
	OctetCount  uint32 // RTP payload octets sent since the start
}

// SR is a parsed sender report (RFC 3550 §6.4.1). Profile-specific
// extensions after the report blocks are ignored.
type SR struct {
	SenderInfo
	Reports ReportBlocks
}

// ParseSR parses the SR at the start of p.
func ParseSR(p []byte) (SR, error) {
	h, b, err := payload(p, TypeSR, -1)
	if err != nil {
		return SR{}, err
	}
	if len(b) < senderInfoLen {
		return SR{}, ErrTruncated
	}
	rs, err := reportBlocks(b[senderInfoLen:], int(h.Count))
	if err != nil {
		return SR{}, err
	}
	return SR{
		SenderInfo: SenderInfo{
			SSRC:        binary.BigEndian.Uint32(b),
			NTPTime:     binary.BigEndian.Uint64(b[4:]),
			RTPTime:     binary.BigEndian.Uint32(b[12:]),
			PacketCount: binary.BigEndian.Uint32(b[16:]),
			OctetCount:  binary.BigEndian.Uint32(b[20:]),
		},
		Reports: rs,
	}, nil
}

// AppendSR appends an SR for s with the given report blocks (at most 31;
// none is fine) to dst.
func AppendSR(dst []byte, s SenderInfo, reports []ReportBlock) ([]byte, error) {
	if len(reports) > maxReports {
		return dst, ErrTooMany
	}
	start := len(dst)
	dst = appendHeader(dst, uint8(len(reports)), TypeSR)
	dst = binary.BigEndian.AppendUint32(dst, s.SSRC)
	dst = binary.BigEndian.AppendUint64(dst, s.NTPTime)
	dst = binary.BigEndian.AppendUint32(dst, s.RTPTime)
	dst = binary.BigEndian.AppendUint32(dst, s.PacketCount)
	dst = binary.BigEndian.AppendUint32(dst, s.OctetCount)
	dst = appendReportBlocks(dst, reports)
	return finish(dst, start), nil
}
