// Package mmsg reads and writes batches of UDP datagrams with one system
// call per batch and no allocation per datagram.
//
// On Linux a Reader calls recvmmsg(2) and a Writer sendmmsg(2) from
// syscall.RawConn's Read and Write callbacks, so the Go runtime's poller
// still parks a goroutine whose socket has nothing to read, deadlines and
// Close still wake it, and the net package's errors come back unchanged.
// The message headers, iovecs and socket addresses a batch needs are
// allocated once, when the Reader or Writer is made. golang.org/x/net/ipv4's
// ReadBatch does the same system call but builds a net.Addr for every
// datagram; on the media plane's hot path that is an allocation per packet.
//
// Elsewhere a Reader and a Writer fall back to one datagram per call through
// the net package, so code using them builds on every platform.
//
// ListenReusePort opens several sockets on one port with SO_REUSEPORT, so
// that several reader goroutines can share one UDP port.
//
// mmsg owns only this socket plumbing. It imports no Invigil package, and
// nothing but the standard library and golang.org/x/sys.
package mmsg
