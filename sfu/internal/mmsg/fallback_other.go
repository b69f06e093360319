//go:build !linux

package mmsg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
)

// Reader reads datagrams from one socket. Off Linux it reads one datagram
// per call with ReadFromUDPAddrPort and cannot tell a truncated datagram
// from a full one. One goroutine owns a Reader; it does not own the socket.
type Reader struct {
	c         *net.UDPConn
	max       int
	truncated atomic.Uint64
}

// NewReader makes a Reader on c. max is checked as on Linux.
func NewReader(c *net.UDPConn, max int) (*Reader, error) {
	if max < 1 || max > MaxBatch {
		return nil, fmt.Errorf("%w: %d", ErrBatchSize, max)
	}
	return &Reader{c: c, max: max}, nil
}

// Read blocks until a datagram is there (or the deadline passes, or the
// socket is closed) and returns it in ms[0].
func (r *Reader) Read(ms []Message) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	n, addr, err := r.c.ReadFromUDPAddrPort(ms[0].Buf)
	if err != nil {
		return 0, err
	}
	ms[0].N = n
	ms[0].Addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	return 1, nil
}

// Stats returns the Reader's counters. Any goroutine may call it.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{Truncated: r.truncated.Load()}
}

// Writer writes datagrams to one socket. Off Linux it writes one datagram
// per call with WriteToUDPAddrPort, which may wait for the socket. One
// goroutine owns a Writer; it does not own the socket.
type Writer struct {
	c                   *net.UDPConn
	refused, wouldBlock atomic.Uint64
}

// NewWriter makes a Writer on c. max is checked as on Linux.
func NewWriter(c *net.UDPConn, max int) (*Writer, error) {
	if max < 1 || max > MaxBatch {
		return nil, fmt.Errorf("%w: %d", ErrBatchSize, max)
	}
	return &Writer{c: c}, nil
}

// Write sends ms in order and returns how many it is done with. A datagram
// the socket refuses is skipped and counted; a closed socket or a passed
// deadline stops the batch.
func (w *Writer) Write(ms []Message) (int, error) {
	for i := range ms {
		_, err := w.c.WriteToUDPAddrPort(ms[i].Buf, ms[i].Addr)
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
			return i, err
		}
		w.refused.Add(1)
	}
	return len(ms), nil
}

// Stats returns the Writer's counters. Any goroutine may call it.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Refused: w.refused.Load(), WouldBlock: w.wouldBlock.Load()}
}

// ListenReusePort opens one socket off Linux; for more it returns
// ErrReusePortUnsupported, since other kernels do not spread one port's
// UDP flows over sockets the way Linux does.
func ListenReusePort(network string, laddr *net.UDPAddr, n int) ([]*net.UDPConn, error) {
	if n != 1 {
		return nil, fmt.Errorf("%w (%d sockets)", ErrReusePortUnsupported, n)
	}
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("mmsg: listen: %w", err)
	}
	return []*net.UDPConn{c}, nil
}
