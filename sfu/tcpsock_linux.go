package sfu

import (
	"net"

	"golang.org/x/sys/unix"
)

// boundUnsent keeps at most tcpUnsent bytes that the kernel has not yet
// sent queued on c (TCP_NOTSENT_LOWAT): past that a write waits, so a
// link that stops draining backs up into the connection's own backlog,
// where video gives way first, and not into a send buffer the kernel
// grows to megabytes (seconds of a grid, delivered late). Bytes in
// flight are not bounded by it, so a long fat link still fills.
func boundUnsent(c net.Conn) error {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, tcpUnsent)
	}); err != nil {
		return err
	}
	return serr
}
