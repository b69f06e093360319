// Package lanes is the lean load client's one UDP socket: every synthetic
// participant sends and receives through it, each from an address of its
// own in 127.0.0.0/8, so the node sees a distinct client address per
// participant while the load generator batches every participant's
// datagrams into one recvmmsg(2) or sendmmsg(2) call.
//
// The socket is bound to 0.0.0.0 and, with SO_BINDTODEVICE, to the
// loopback device only (it takes no datagram from any other interface).
// IP_PKTINFO does the rest: on receive the kernel says which local
// address a datagram was sent to (which participant it is for); on send
// each message names the local address it leaves from (ipi_spec_dst).
// Linux routes all of 127.0.0.0/8 to lo, so any address there is local
// without configuring it.
//
// Linux only (recvmmsg, sendmmsg, SO_BINDTODEVICE); elsewhere Listen
// fails with ErrUnsupported. It imports only golang.org/x/sys.
package lanes
