package rtcpx

import "encoding/binary"

// RR is a parsed receiver report (RFC 3550 §6.4.2). Profile-specific
// extensions after the report blocks are ignored.
type RR struct {
	SSRC    uint32 // the reporter
	Reports ReportBlocks
}

// ParseRR parses the RR at the start of p.
func ParseRR(p []byte) (RR, error) {
	h, b, err := payload(p, TypeRR, -1)
	if err != nil {
		return RR{}, err
	}
	if len(b) < 4 {
		return RR{}, ErrTruncated
	}
	rs, err := reportBlocks(b[4:], int(h.Count))
	if err != nil {
		return RR{}, err
	}
	return RR{SSRC: binary.BigEndian.Uint32(b), Reports: rs}, nil
}

// AppendRR appends an RR from ssrc with the given report blocks (at most
// 31) to dst. With none it is the empty RR a compound packet starts with
// when there is nothing to report (RFC 3550 §6.1).
func AppendRR(dst []byte, ssrc uint32, reports []ReportBlock) ([]byte, error) {
	if len(reports) > maxReports {
		return dst, ErrTooMany
	}
	start := len(dst)
	dst = appendHeader(dst, uint8(len(reports)), TypeRR)
	dst = binary.BigEndian.AppendUint32(dst, ssrc)
	dst = appendReportBlocks(dst, reports)
	return finish(dst, start), nil
}
