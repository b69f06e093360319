package mmsg

import "errors"

var (
	// ErrWouldBlock is returned by Writer.Write when the socket's send
	// buffer (or the device queue behind it) is full. Write never waits for
	// room: on the media plane a late packet is worth less than the next
	// one, so the caller decides whether to drop or keep the unsent rest.
	ErrWouldBlock = errors.New("mmsg: send buffer full")

	// ErrBatchSize is returned by NewReader and NewWriter for a batch size
	// outside [1, MaxBatch].
	ErrBatchSize = errors.New("mmsg: batch size out of range")

	// ErrNotUDP is returned by NewReader and NewWriter for a socket that is
	// neither AF_INET nor AF_INET6.
	ErrNotUDP = errors.New("mmsg: socket is not an IPv4 or IPv6 UDP socket")

	// ErrReusePortUnsupported is returned by ListenReusePort for more than
	// one socket on a platform where SO_REUSEPORT does not spread UDP flows
	// over sockets the way Linux does.
	ErrReusePortUnsupported = errors.New("mmsg: SO_REUSEPORT load balancing is Linux only")
)
