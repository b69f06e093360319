package mmsg

import (
	"net"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writer writes batches of datagrams to one socket with sendmmsg(2). One
// goroutine owns a Writer; it does not own the socket, which its owner
// closes.
type Writer struct {
	b batch
	// send is w.sendmmsg, bound once so that Write allocates nothing.
	send func(fd uintptr) bool

	// State of the system call in progress, shared with send: it sends
	// headers [off, cnt) and reports how many went and the error that
	// stopped it.
	off, cnt int
	sent     int
	errno    unix.Errno

	refused, wouldBlock atomic.Uint64
}

// NewWriter makes a Writer of up to max datagrams per system call on c.
func NewWriter(c *net.UDPConn, max int) (*Writer, error) {
	b, err := newBatch(c, max)
	if err != nil {
		return nil, err
	}
	w := &Writer{b: b}
	w.send = w.sendmmsg
	return w, nil
}

// Write sends ms in order, in as few system calls as it can, and returns
// how many of them it is done with: sent, or skipped because the kernel
// refused them. A refused datagram (unreachable or invalid destination,
// too large; see Stats) does not stop the ones after it.
//
// Write never waits for the socket. When the send buffer or the device
// queue is full it stops and returns ErrWouldBlock; ms[n:] were not sent.
// Errors of the socket itself (closed) are the net package's, and ms[n:]
// were not sent either.
func (w *Writer) Write(ms []Message) (n int, err error) {
	for n < len(ms) {
		cnt := 0
		for cnt < len(w.b.hdrs) && n+cnt < len(ms) {
			m := &ms[n+cnt]
			if !w.b.setAddr(cnt, m.Addr) {
				break
			}
			w.b.setBuf(cnt, m.Buf)
			cnt++
		}
		done, err := w.flush(cnt)
		n += done
		if err != nil {
			return n, err
		}
		if n < len(ms) && cnt < len(w.b.hdrs) {
			// ms[n] stopped the batch: its address does not fit this
			// socket's family.
			w.refused.Add(1)
			n++
		}
	}
	return n, nil
}

// flush sends the first cnt prepared headers, skipping refused ones, and
// returns how many it is done with.
func (w *Writer) flush(cnt int) (int, error) {
	w.off, w.cnt = 0, cnt
	for w.off < w.cnt {
		if err := w.b.rc.Write(w.send); err != nil {
			return w.off, err
		}
		w.off += w.sent
		switch classify(w.errno) {
		case sendOK:
			if w.sent == 0 {
				// sendmmsg sent nothing and reported nothing; don't spin.
				w.wouldBlock.Add(1)
				return w.off, ErrWouldBlock
			}
		case sendRefused:
			w.refused.Add(1)
			w.off++
		case sendFull:
			w.wouldBlock.Add(1)
			return w.off, ErrWouldBlock
		default:
			return w.off, os.NewSyscallError("sendmmsg", w.errno)
		}
	}
	return w.off, nil
}

// sendmmsg is the RawConn.Write callback. It always reports true: Write
// never lets the poller wait for the socket to become writable.
//
// sendmmsg(2) stops at the first datagram that fails; if some went before
// it, it reports only their count, and the failure comes back when flush
// retries from that datagram.
func (w *Writer) sendmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd,
			uintptr(unsafe.Pointer(&w.b.hdrs[w.off])), uintptr(w.cnt-w.off),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		w.sent, w.errno = int(n), e
		if e != 0 {
			w.sent = 0
		}
		return true
	}
}

// sendVerdict is what Write does after a system call's error.
type sendVerdict int

const (
	sendOK      sendVerdict = iota // no error
	sendRefused                    // skip the datagram, count it, go on
	sendFull                       // stop with ErrWouldBlock
	sendFailed                     // stop with the error: the socket is unusable
)

// classify sorts sendmmsg's errors. The refusals concern one datagram and
// its destination, so the rest still go; EAGAIN is a full send buffer and
// ENOBUFS a full device queue, which the next datagrams would meet too.
func classify(e unix.Errno) sendVerdict {
	switch e {
	case 0:
		return sendOK
	case unix.EAGAIN, unix.ENOBUFS:
		return sendFull
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN,
		unix.ENETDOWN, unix.EMSGSIZE, unix.EACCES, unix.EPERM, unix.EADDRNOTAVAIL,
		unix.EAFNOSUPPORT, unix.EINVAL, unix.EDESTADDRREQ:
		return sendRefused
	default:
		return sendFailed
	}
}

// Stats returns the Writer's counters. Any goroutine may call it.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Refused: w.refused.Load(), WouldBlock: w.wouldBlock.Load()}
}
