package lanes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxBatch is the most datagrams one Reader or Writer call moves: 64 is
// where sendmmsg's saving per datagram levels off (the kernel's UIO_MAXIOV
// allows 1,024), and a batch of 64 full datagrams is ~96 KB of buffers.
const MaxBatch = 64

// MaxDatagram is each batch slot's buffer: more than any datagram the
// node sends (it keeps RTP under a 1,200-byte path MTU, and DTLS records
// of the handshake under ~1,200 too), so nothing is cut short.
const MaxDatagram = 1500

// socketBuffer is the kernel's send and receive buffer of the shared
// socket. It carries every participant's traffic: ~120,000 datagrams a
// second at 1,000 students, so 16 MiB holds ~100 ms of it, more than a
// scheduling hiccup of a busy load generator. Set with SO_RCVBUFFORCE
// (root), past net.core.rmem_max; the kernel allocates it only as
// datagrams queue.
const socketBuffer = 16 << 20

// Conn is the shared socket. Readers and Writers made on it each belong
// to one goroutine; WriteTo may be called from any.
type Conn struct {
	c    *net.UDPConn
	rc   syscall.RawConn
	port uint16

	// mu guards ctl, the writer WriteTo sends with.
	mu  sync.Mutex
	ctl *Writer
}

// Listen opens the shared socket on 0.0.0.0 and an ephemeral port,
// restricted to the loopback device, with IP_PKTINFO on. It fails with
// ErrBindDevice when the kernel refuses SO_BINDTODEVICE.
func Listen() (*Conn, error) {
	var bindErr error
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if e := unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo"); e != nil {
				bindErr = fmt.Errorf("%w: %v", ErrBindDevice, e)
				serr = bindErr
				return
			}
			if e := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1); e != nil {
				serr = fmt.Errorf("lanes: setsockopt IP_PKTINFO: %w", e)
				return
			}
			for _, opt := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[0], socketBuffer) != nil {
					_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt[1], socketBuffer)
				}
			}
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:0")
	if err != nil {
		if bindErr != nil {
			return nil, bindErr
		}
		return nil, fmt.Errorf("lanes: listen: %w", err)
	}
	c := pc.(*net.UDPConn)
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("lanes: %w", err)
	}
	conn := &Conn{c: c, rc: rc, port: uint16(c.LocalAddr().(*net.UDPAddr).Port)}
	conn.ctl, _ = conn.NewWriter(1)
	return conn, nil
}

// Port is the socket's port: every participant's address has it.
func (c *Conn) Port() uint16 { return c.port }

// Close closes the socket; a blocked Read returns net.ErrClosed.
func (c *Conn) Close() error { return c.c.Close() }

// WriteTo sends one datagram from the local address from (in
// 127.0.0.0/8) to to. It serialises its callers: it is for the
// handshake's and the control's few datagrams, not media.
func (c *Conn) WriteTo(b []byte, from netip.Addr, to netip.AddrPort) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) > MaxDatagram {
		return fmt.Errorf("lanes: %d-byte datagram", len(b))
	}
	buf := c.ctl.Next()
	n := copy(buf[:cap(buf)], b)
	c.ctl.Commit(n, from, to)
	return c.ctl.Flush()
}

// Message is one datagram a Reader received: N bytes of Buf, sent from
// Remote to the local address Local (which participant it is for).
type Message struct {
	Buf    []byte
	N      int
	Local  netip.Addr
	Remote netip.AddrPort
}

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2), which
// golang.org/x/sys/unix does not declare: a msghdr and the byte count.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// pktinfoSpace is the control buffer of one message: one IP_PKTINFO
// cmsg (struct in_pktinfo, ip(7)).
var pktinfoSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)

// batch is the memory of one call, linked once: headers, iovecs, names,
// control buffers.
type batch struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ctl   []byte // pktinfoSpace per message
}

func (c *Conn) newBatch(n int) (batch, error) {
	if n < 1 || n > MaxBatch {
		return batch{}, fmt.Errorf("%w: %d", ErrBatch, n)
	}
	b := batch{rc: c.rc, hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n), ctl: make([]byte, n*pktinfoSpace)}
	for i := range b.hdrs {
		h := &b.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
		h.Control = &b.ctl[i*pktinfoSpace]
		h.SetControllen(pktinfoSpace)
	}
	return b, nil
}

func (b *batch) setBuf(i int, p []byte) {
	b.iovs[i].Base = &p[0]
	b.iovs[i].SetLen(len(p))
}

func (b *batch) cmsg(i int) (*unix.Cmsghdr, *unix.Inet4Pktinfo) {
	c := b.ctl[i*pktinfoSpace:]
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&c[unix.CmsgLen(0)]))
	return h, info
}

// Reader receives batches of datagrams. One goroutine owns it.
type Reader struct {
	b     batch
	ms    []Message
	n     int
	errno unix.Errno
	recv  func(fd uintptr) bool // r.recvmmsg, bound once: Read allocates nothing
}

// NewReader makes a Reader of up to n datagrams per Read.
func (c *Conn) NewReader(n int) (*Reader, error) {
	b, err := c.newBatch(n)
	if err != nil {
		return nil, err
	}
	r := &Reader{b: b}
	r.recv = r.recvmmsg
	return r, nil
}

// Read waits (parked in the runtime's poller) until a datagram is there
// or the socket is closed, then fills ms[:n] with what is queued, every
// Buf at least MaxDatagram long. A datagram without its IP_PKTINFO is
// returned with an invalid Local.
func (r *Reader) Read(ms []Message) (int, error) {
	ms = ms[:min(len(ms), len(r.b.hdrs))]
	for i := range ms {
		r.b.setBuf(i, ms[i].Buf)
	}
	r.ms = ms
	err := r.b.rc.Read(r.recv)
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

func (r *Reader) recvmmsg(fd uintptr) bool {
	for i := range r.ms {
		h := &r.b.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet4
		h.SetControllen(pktinfoSpace)
		h.Flags = 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.b.hdrs[0])),
			uintptr(len(r.ms)), unix.MSG_DONTWAIT, 0, 0)
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
		for i := range int(n) {
			m, h := &r.ms[i], &r.b.hdrs[i]
			m.N = int(h.len)
			sa := &r.b.names[i]
			port := uint16(sa.Port>>8 | sa.Port<<8) // network order
			m.Remote = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
			m.Local = netip.Addr{}
			if h.hdr.Controllen >= uint64(unix.CmsgLen(unix.SizeofInet4Pktinfo)) {
				ch, info := r.b.cmsg(i)
				if ch.Level == unix.IPPROTO_IP && ch.Type == unix.IP_PKTINFO {
					m.Local = netip.AddrFrom4(info.Addr)
				}
			}
			if h.hdr.Flags&unix.MSG_TRUNC != 0 {
				m.N = 0 // longer than MaxDatagram: the caller skips it
			}
		}
		r.n = int(n)
		return true
	}
}

// Writer queues datagrams into its own buffers and sends them in one
// sendmmsg call. One goroutine owns it.
type Writer struct {
	b    batch
	bufs [][]byte
	n    int // queued
	sent int // of the queued, sent by the current Flush
	err  unix.Errno
	send func(fd uintptr) bool
}

// NewWriter makes a Writer of n slots.
func (c *Conn) NewWriter(n int) (*Writer, error) {
	b, err := c.newBatch(n)
	if err != nil {
		return nil, err
	}
	w := &Writer{b: b, bufs: make([][]byte, n)}
	mem := make([]byte, n*MaxDatagram)
	for i := range w.bufs {
		w.bufs[i] = mem[i*MaxDatagram : (i+1)*MaxDatagram : (i+1)*MaxDatagram]
		ch, _ := b.cmsg(i)
		ch.Level, ch.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		ch.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		b.hdrs[i].hdr.SetControllen(unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	}
	w.send = w.sendmmsg
	return w, nil
}

// Full reports whether every slot is queued: Flush before the next.
func (w *Writer) Full() bool { return w.n == len(w.bufs) }

// Len is how many datagrams are queued.
func (w *Writer) Len() int { return w.n }

// Next is the next slot's buffer (length 0, capacity MaxDatagram), to
// build a datagram in; Commit queues it. Call only when not Full.
func (w *Writer) Next() []byte { return w.bufs[w.n][:0] }

// Commit queues the first n bytes of the slot Next returned, to leave
// from the local address from and go to to.
func (w *Writer) Commit(n int, from netip.Addr, to netip.AddrPort) {
	i := w.n
	w.b.setBuf(i, w.bufs[i][:n])
	sa := &w.b.names[i]
	sa.Family = unix.AF_INET
	p := to.Port()
	sa.Port = p>>8 | p<<8
	sa.Addr = to.Addr().As4()
	_, info := w.b.cmsg(i)
	info.Ifindex = 0
	info.Spec_dst = from.As4()
	info.Addr = [4]byte{}
	w.n++
}

// Flush sends every queued datagram, waiting in the poller while the
// socket's buffer is full. A datagram the kernel refuses (an error other
// than a full buffer) is dropped and counted in the returned error's
// place only for the first; the rest still go.
func (w *Writer) Flush() error {
	var first error
	for w.sent < w.n {
		w.err = 0
		err := w.b.rc.Write(w.send)
		if err != nil {
			w.n, w.sent = 0, 0
			return err
		}
		if w.err != 0 {
			if first == nil {
				first = os.NewSyscallError("sendmmsg", w.err)
			}
			w.sent++ // skip the refused datagram
		}
	}
	w.n, w.sent = 0, 0
	return first
}

func (w *Writer) sendmmsg(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.b.hdrs[w.sent])),
			uintptr(w.n-w.sent), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			w.sent += int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			w.err = e
			return true
		}
	}
}
