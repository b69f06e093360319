package lanes

import "errors"

// Errors of the package.
var (
	// ErrUnsupported: the shared socket needs Linux.
	ErrUnsupported = errors.New("lanes: the lean client's shared socket needs Linux (recvmmsg, sendmmsg, SO_BINDTODEVICE)")
	// ErrBindDevice: SO_BINDTODEVICE was refused, as it is without
	// CAP_NET_RAW (root) on kernels before 5.7.
	ErrBindDevice = errors.New("lanes: cannot restrict the socket to the loopback device (SO_BINDTODEVICE \"lo\"; run as root, or use --client pion)")
	// ErrBatch: a batch size outside 1..MaxBatch.
	ErrBatch = errors.New("lanes: batch size out of range")
)
