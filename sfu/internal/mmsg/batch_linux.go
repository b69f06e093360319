package mmsg

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2): a msghdr and
// the byte count the kernel fills in. golang.org/x/sys/unix has Msghdr but
// not this. Go pads the struct to Msghdr's alignment exactly as C does
// (64 bytes on 64-bit platforms, 32 on 32-bit ones).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batch is the memory one Reader or Writer hands the kernel: a header, an
// iovec and a socket address per datagram, linked to each other once, when
// the batch is made, so a call only writes buffer pointers, lengths and
// addresses. Exactly one of sa4 and sa6 is used, by the socket's family.
type batch struct {
	rc      syscall.RawConn
	v6      bool
	namelen uint32
	hdrs    []mmsghdr
	iovs    []unix.Iovec
	sa4     []unix.RawSockaddrInet4
	sa6     []unix.RawSockaddrInet6
}

// newBatch makes the headers for up to max datagrams on c's socket, whose
// family it asks the kernel for (SO_DOMAIN): the local address cannot tell a
// dual-stack AF_INET6 socket bound to ::ffff:127.0.0.1 from an AF_INET one.
func newBatch(c *net.UDPConn, max int) (batch, error) {
	if max < 1 || max > MaxBatch {
		return batch{}, fmt.Errorf("%w: %d", ErrBatchSize, max)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return batch{}, fmt.Errorf("mmsg: %w", err)
	}
	var family int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return batch{}, fmt.Errorf("mmsg: %w", err)
	}
	if serr != nil {
		return batch{}, fmt.Errorf("mmsg: getsockopt SO_DOMAIN: %w", serr)
	}
	b := batch{rc: rc, hdrs: make([]mmsghdr, max), iovs: make([]unix.Iovec, max)}
	switch family {
	case unix.AF_INET:
		b.sa4 = make([]unix.RawSockaddrInet4, max)
		b.namelen = unix.SizeofSockaddrInet4
	case unix.AF_INET6:
		b.v6 = true
		b.sa6 = make([]unix.RawSockaddrInet6, max)
		b.namelen = unix.SizeofSockaddrInet6
	default:
		return batch{}, fmt.Errorf("%w (family %d)", ErrNotUDP, family)
	}
	for i := range b.hdrs {
		h := &b.hdrs[i].hdr
		if b.v6 {
			h.Name = (*byte)(unsafe.Pointer(&b.sa6[i]))
		} else {
			h.Name = (*byte)(unsafe.Pointer(&b.sa4[i]))
		}
		h.Namelen = b.namelen
		h.Iov = &b.iovs[i]
		h.SetIovlen(1)
	}
	return b, nil
}

// setBuf points datagram i's iovec at p.
func (b *batch) setBuf(i int, p []byte) {
	iov := &b.iovs[i]
	if len(p) == 0 {
		iov.Base = nil
	} else {
		iov.Base = &p[0]
	}
	iov.SetLen(len(p))
}

// addr decodes the source address the kernel wrote for datagram i.
func (b *batch) addr(i int) netip.AddrPort {
	if b.v6 {
		sa := &b.sa6[i]
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), netPort(&sa.Port))
	}
	sa := &b.sa4[i]
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), netPort(&sa.Port))
}

// setAddr encodes ap as datagram i's destination. An IPv4 destination on an
// AF_INET6 socket takes the IPv4-mapped form (RFC 4291 §2.5.5.2). It reports
// false for an address this socket cannot send to: an invalid one, or IPv6
// from an AF_INET socket.
func (b *batch) setAddr(i int, ap netip.AddrPort) bool {
	a := ap.Addr()
	if b.v6 {
		if !a.IsValid() {
			return false
		}
		sa := &b.sa6[i]
		sa.Family = unix.AF_INET6
		setNetPort(&sa.Port, ap.Port())
		sa.Flowinfo = 0
		sa.Addr = a.As16()
		sa.Scope_id = 0
		return true
	}
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	sa := &b.sa4[i]
	sa.Family = unix.AF_INET
	setNetPort(&sa.Port, ap.Port())
	sa.Addr = a.As4()
	return true
}

// netPort reads a port stored in network byte order, as in sockaddr_in.
func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// setNetPort stores port in network byte order.
func setNetPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}
