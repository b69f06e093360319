package rtcpx

import "encoding/binary"

// sdesCNAME is the CNAME item type (RFC 3550 §6.5.1).
const sdesCNAME = 1

// AppendSDES appends an SDES packet with one chunk, for ssrc, holding one
// CNAME item (RFC 3550 §6.5): the item every compound RTCP packet must
// carry (§6.1). The chunk ends with the null octets that terminate its item
// list and pad it to a 32-bit boundary. A CNAME longer than 255 octets is
// ErrTooLong.
func AppendSDES(dst []byte, ssrc uint32, cname string) ([]byte, error) {
	if len(cname) > 255 {
		return dst, ErrTooLong
	}
	start := len(dst)
	dst = appendHeader(dst, 1, TypeSDES)
	dst = binary.BigEndian.AppendUint32(dst, ssrc)
	dst = append(dst, sdesCNAME, byte(len(cname)))
	dst = append(dst, cname...)
	// At least one null octet ends the list (§6.5), then up to a word.
	dst = append(dst, 0)
	for (len(dst)-start)%4 != 0 {
		dst = append(dst, 0)
	}
	return finish(dst, start), nil
}
