package mmsg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ListenReusePort opens n UDP sockets bound to the same address and port,
// each with SO_REUSEPORT set before bind. When laddr.Port is 0 the first
// socket picks the port and the others bind to the port it got. network is
// "udp", "udp4" or "udp6"; a nil laddr is the wildcard address.
//
// The kernel hashes each datagram's 4-tuple (source and destination address
// and port) to one socket of the group, so all of one client's datagrams
// reach the same socket, and so the same reader goroutine, as long as the
// group does not change: closing one socket remaps the flows of all. A
// datagram from a new client may reach any socket, so the readers must
// share what they know about clients.
//
// Sockets of one group must belong to the same user. The caller owns and
// closes them.
func ListenReusePort(network string, laddr *net.UDPAddr, n int) ([]*net.UDPConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("mmsg: listen: network %q is not UDP", network)
	}
	if n < 1 {
		return nil, fmt.Errorf("mmsg: listen: %d sockets", n)
	}
	addr := net.UDPAddr{}
	if laddr != nil {
		addr = *laddr
	}
	lc := net.ListenConfig{Control: setReusePort}
	conns := make([]*net.UDPConn, 0, n)
	for i := range n {
		pc, err := lc.ListenPacket(context.Background(), network, addr.String())
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, fmt.Errorf("mmsg: listen %d of %d: %w", i+1, n, err)
		}
		c := pc.(*net.UDPConn)
		if i == 0 && addr.Port == 0 {
			addr.Port = c.LocalAddr().(*net.UDPAddr).Port
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// setReusePort is a net.ListenConfig Control function: it runs after the
// socket is made and before it is bound.
func setReusePort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	return errors.Join(err, serr)
}
