package rtcpx

import "errors"

// The parsers' errors. They are returned as they are, never wrapped: a
// hostile peer can send malformed RTCP as fast as it likes, and rejecting
// it must not allocate.
var (
	// ErrTruncated is returned for a packet shorter than its header, than
	// its length field says, or than its counts need.
	ErrTruncated = errors.New("rtcpx: packet truncated")

	// ErrVersion is returned for a packet whose version field is not 2
	// (RFC 3550 §6.4.1).
	ErrVersion = errors.New("rtcpx: RTCP version is not 2")

	// ErrPadding is returned for a padded packet whose last octet, the
	// padding count, is 0 or more than the packet's payload.
	ErrPadding = errors.New("rtcpx: bad padding count")

	// ErrType is returned by a parser given another packet type or
	// feedback message type than the one it reads.
	ErrType = errors.New("rtcpx: wrong packet type")

	// ErrMalformed is returned for a packet of the right type whose
	// contents break its format (a reserved TWCC status symbol, say).
	ErrMalformed = errors.New("rtcpx: malformed packet")
)

// The builders' errors.
var (
	// ErrTooMany is returned by a builder given more items than the
	// packet's count field holds (31 report blocks, 255 REMB SSRCs).
	ErrTooMany = errors.New("rtcpx: too many items for one packet")

	// ErrTooLong is returned by AppendSDES for a CNAME longer than the
	// 255 octets an SDES item's length field allows.
	ErrTooLong = errors.New("rtcpx: SDES item longer than 255 octets")
)
