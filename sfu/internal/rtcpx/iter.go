package rtcpx

// Iter walks the packets of a compound RTCP packet (RFC 3550 §6.1):
//
//	it := rtcpx.Packets(b)
//	for it.Next() {
//		h, p := it.Header(), it.Packet()
//		…
//	}
//	if err := it.Err(); err != nil { … }
//
// It does not require the compound to start with an SR or RR, since
// reduced-size RTCP (RFC 5506 §3) sends feedback packets on their own. It
// stops at the first packet whose header is malformed or whose length runs
// past b, and Err reports why; the packets before it were good.
type Iter struct {
	rest []byte
	h    Header
	p    []byte
	err  error
}

// Packets returns an iterator over the packets in b. It keeps b; it copies
// nothing.
func Packets(b []byte) Iter {
	return Iter{rest: b}
}

// Next moves to the next packet and reports whether there is one.
func (it *Iter) Next() bool {
	if it.err != nil || len(it.rest) == 0 {
		it.p = nil
		return false
	}
	h, err := ParseHeader(it.rest)
	if err != nil {
		it.err, it.rest, it.p = err, nil, nil
		return false
	}
	it.h, it.p, it.rest = h, it.rest[:h.Length], it.rest[h.Length:]
	return true
}

// Header returns the current packet's header.
func (it *Iter) Header() Header { return it.h }

// Packet returns the current packet, header and padding included: what the
// Parse functions take. It aliases the compound's bytes.
func (it *Iter) Packet() []byte { return it.p }

// Err returns the error that stopped the walk, or nil if it reached the end
// of the compound.
func (it *Iter) Err() error { return it.err }
