package rtcpx

import "encoding/binary"

// chunkEncoder packs a sequence of TWCC status symbols into packet status
// chunks (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1.2–4). It
// holds back symbols until it knows which chunk takes them best: a run
// length chunk for up to 8,191 equal symbols, a one-bit vector for 14
// symbols with no large delta, a two-bit vector for 7 of any kind.
type chunkEncoder struct {
	syms  [14]uint8 // the pending symbols (only the first 14 kept: beyond that they are all equal)
	n     int       // number of pending symbols
	same  bool      // all pending symbols equal syms[0]
	large bool      // a pending symbol is twccLargeDelta
}

// maxRunLength is the longest run a run length chunk holds (13 bits).
const maxRunLength = 1<<13 - 1

// pending returns the number of chunks the pending symbols still need
// written if no more came: 0 or 1.
func (e *chunkEncoder) pending() int {
	if e.n > 0 {
		return 1
	}
	return 0
}

// add appends sym to the pending symbols, first appending to dst the chunk
// that must be written for it to fit.
func (e *chunkEncoder) add(dst []byte, sym uint8) []byte {
	if !e.fits(sym) {
		dst = e.emit(dst)
	}
	if e.n < len(e.syms) {
		e.syms[e.n] = sym
	}
	e.same = e.n == 0 || e.same && sym == e.syms[0]
	e.large = e.large || sym == twccLargeDelta
	e.n++
	return dst
}

// fits reports whether sym can join the pending symbols in one chunk.
func (e *chunkEncoder) fits(sym uint8) bool {
	switch {
	case e.n < 7: // a two-bit vector holds any 7
		return true
	case e.n < 14 && !e.large && sym != twccLargeDelta: // a one-bit vector, 14
		return true
	default: // a run
		return e.same && sym == e.syms[0] && e.n < maxRunLength
	}
}

// emit appends one chunk that takes pending symbols from the front, making
// room for one more.
func (e *chunkEncoder) emit(dst []byte) []byte {
	switch {
	case e.same:
		dst = appendRun(dst, e.syms[0], e.n)
		e.n = 0
	case e.n == 14: // not all equal past 7, so no large delta among them
		dst = appendVector(dst, e.syms[:14], 1)
		e.n = 0
	default: // 7 to 13 symbols that no one chunk holds: write 7, keep the rest
		dst = appendVector(dst, e.syms[:7], 2)
		e.n = copy(e.syms[:], e.syms[7:e.n])
		e.same, e.large = true, false
		for _, s := range e.syms[:e.n] {
			e.same = e.same && s == e.syms[0]
			e.large = e.large || s == twccLargeDelta
		}
	}
	return dst
}

// flush appends the chunk for the pending symbols, if any. The unused
// symbols of a last vector chunk are zeros, beyond the status count.
func (e *chunkEncoder) flush(dst []byte) []byte {
	switch {
	case e.n == 0:
	case e.same:
		dst = appendRun(dst, e.syms[0], e.n)
	case e.n <= 7:
		dst = appendVector(dst, e.syms[:e.n], 2)
	default: // 8 to 13, no large delta
		dst = appendVector(dst, e.syms[:e.n], 1)
	}
	*e = chunkEncoder{}
	return dst
}

// appendRun appends a run length chunk: 0, the symbol, the run length.
func appendRun(dst []byte, sym uint8, n int) []byte {
	return binary.BigEndian.AppendUint16(dst, uint16(sym)<<13|uint16(n))
}

// appendVector appends a status vector chunk of bits-bit symbols (1 or
// 2): 1, the symbol size (0 for one bit, 1 for two), the symbols from the
// most significant end.
func appendVector(dst []byte, syms []uint8, bits int) []byte {
	c := uint16(0x8000)
	if bits == 2 {
		c |= 0x4000
	}
	shift := 14 - bits
	for _, s := range syms {
		c |= uint16(s) << shift
		shift -= bits
	}
	return binary.BigEndian.AppendUint16(dst, c)
}
