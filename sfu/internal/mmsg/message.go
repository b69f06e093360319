package mmsg

import "net/netip"

// MaxBatch is the most datagrams a Reader or Writer moves in one system
// call: Linux's UIO_MAXIOV, the largest vlen recvmmsg(2) and sendmmsg(2)
// accept.
const MaxBatch = 1024

// Message is one datagram of a batch.
type Message struct {
	// Buf is, for Read, the buffer to fill: its length (not its capacity)
	// is the most bytes a datagram may have. For Write it is the datagram.
	Buf []byte
	// N is, after Read, the number of bytes received into Buf. Write does
	// not use it.
	N int
	// Addr is, after Read, the datagram's source (an IPv4 source on a
	// dual-stack socket is reported as IPv4, not IPv4-mapped IPv6); for
	// Write, its destination. Zones are neither reported nor used.
	Addr netip.AddrPort
}

// ReaderStats counts what a Reader dropped.
type ReaderStats struct {
	// Truncated counts datagrams longer than the buffer offered for them
	// (MSG_TRUNC): they are dropped, never returned cut short.
	Truncated uint64
}

// WriterStats counts what a Writer could not send.
type WriterStats struct {
	// Refused counts datagrams skipped because the kernel refused them
	// (unreachable or invalid destination, too large) or because their
	// address cannot be sent from this socket (IPv6 from an IPv4 socket).
	Refused uint64
	// WouldBlock counts Write calls that stopped at a full send buffer or
	// device queue (EAGAIN, ENOBUFS) and returned ErrWouldBlock.
	WouldBlock uint64
}
