//go:build !linux

package sfu

import "net"

// boundUnsent bounds the kernel's unsent bytes on Linux; elsewhere it
// keeps the send buffer small instead, which bounds bytes in flight too.
func boundUnsent(c net.Conn) error {
	if tc, ok := c.(*net.TCPConn); ok {
		return tc.SetWriteBuffer(4 * tcpUnsent)
	}
	return nil
}
