package mmsg

import (
	"net"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reader reads batches of datagrams from one socket with recvmmsg(2). One
// goroutine owns a Reader; it does not own the socket, which its owner
// closes.
type Reader struct {
	b batch
	// recv is r.recvmmsg, bound once so that Read allocates nothing.
	recv func(fd uintptr) bool

	// State of the Read in progress, shared with recv.
	ms    []Message
	n     int
	errno unix.Errno

	truncated atomic.Uint64
}

// NewReader makes a Reader of up to max datagrams per call on c.
func NewReader(c *net.UDPConn, max int) (*Reader, error) {
	b, err := newBatch(c, max)
	if err != nil {
		return nil, err
	}
	r := &Reader{b: b}
	r.recv = r.recvmmsg
	return r, nil
}

// Read blocks until at least one datagram is there, or the read deadline set
// on the socket passes, or the socket is closed (then it returns the net
// package's error: os.ErrDeadlineExceeded or net.ErrClosed, wrapped). It
// then fills ms[:n], n ≤ min(len(ms), max), with the datagrams already
// queued, without waiting for more.
//
// A datagram longer than its Buf is dropped and counted in Stats, never
// returned cut short. To keep datagrams with their buffers, Read may swap
// the Message of a dropped datagram with a later one: every Buf stays in
// ms, but not necessarily at the index it had.
func (r *Reader) Read(ms []Message) (n int, err error) {
	if len(ms) > len(r.b.hdrs) {
		ms = ms[:len(r.b.hdrs)]
	}
	if len(ms) == 0 {
		return 0, nil
	}
	for i := range ms {
		r.b.setBuf(i, ms[i].Buf)
		r.b.hdrs[i].hdr.Namelen = r.b.namelen
	}
	r.ms = ms
	err = r.b.rc.Read(r.recv)
	n, errno := r.n, r.errno
	r.ms, r.n, r.errno = nil, 0, 0
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	return n, nil
}

// recvmmsg is the RawConn.Read callback. It reports false, so that the
// poller parks the goroutine, only when the socket has nothing queued
// (EAGAIN): the poller is edge-triggered, so waiting while datagrams are
// still queued could wait for the next one to arrive.
func (r *Reader) recvmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd,
			uintptr(unsafe.Pointer(&r.b.hdrs[0])), uintptr(len(r.ms)),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.errno = e
			return true
		}
		if r.n = r.collect(int(n)); r.n > 0 {
			return true
		}
		// Every datagram was truncated: read on. The kernel rewrote the
		// address lengths; the buffers are still in place since nothing
		// was swapped.
		for i := range r.ms {
			r.b.hdrs[i].hdr.Namelen = r.b.namelen
		}
	}
}

// collect records the n datagrams received, drops the truncated ones and
// returns how many are left at the front of r.ms.
func (r *Reader) collect(n int) int {
	k := 0
	for i := range n {
		h := &r.b.hdrs[i]
		if h.hdr.Flags&unix.MSG_TRUNC != 0 {
			r.truncated.Add(1)
			continue
		}
		m := &r.ms[i]
		m.N = int(h.len)
		m.Addr = r.b.addr(i)
		if i != k {
			r.ms[k], r.ms[i] = r.ms[i], r.ms[k]
		}
		k++
	}
	return k
}

// Stats returns the Reader's counters. Any goroutine may call it.
func (r *Reader) Stats() ReaderStats {
	return ReaderStats{Truncated: r.truncated.Load()}
}
