// Package sfu is Invigil's media plane: every session's ICE, DTLS and SRTP
// on one shared UDP port and one ICE-TCP port, and the packet path that
// forwards what students publish to the proctors watching them.
//
// The node is ICE-lite (RFC 8445 §2.5): it answers the browser's checks
// (pion/stun) and sends only to addresses that passed one; pion/dtls runs
// the handshake, whose exported keys (RFC 5764) feed pion/srtp contexts;
// SDP is read and written with pion/sdp. Established media never passes
// through those libraries' plumbing: a few readers (one per socket, the
// kernel hashing each client to one with SO_REUSEPORT) take datagrams in
// batches (recvmmsg), find each one's session by source address, decrypt
// it in place, hand it to its track, which translates it for each
// subscriber, encrypts it into the reader's send batch, and sends the
// batch (sendmmsg): run to completion, with no goroutine hand-off and no
// allocation per packet. An ICE-TCP connection (RFC 6544, RFC 4571
// framing) has a reader of its own doing the same, and a writer draining
// a bounded backlog whose drop policy (video to the next keyframe, audio
// last) means a subscriber that stops draining holds back nobody else.
//
// RTCP is the node's own (rtcpx builds and parses it without allocating):
// receiver reports, NACKs and transport-wide CC feedback to publishers,
// sender reports to subscribers, NACKs answered from each layer's
// retransmission ring, keyframe requests throttled per layer, REMB read
// from subscribers. The Engine's clock runs every session's timers.
// With Config.ConcealFocus (conceal.go) what a publisher receives never
// depends on who watches it: every layer on, keyframes on a cadence.
//
// Locks on the path: a publisher's receive state is guarded by its rxMu
// (uncontended: its reader is the only one that takes it per packet); a
// down-track's translation state by its mu; a subscriber's outbound SRTP
// context by its txMu, taken for one encryption. None is held across a
// socket write, and nothing per packet logs, allocates or waits for a
// subscriber.
//
// sfu knows only pion, golang.org/x/sys and its own internal packages. It
// must not import any other Invigil package and knows nothing of rooms,
// roles, tokens or Redis: whoever uses it decides which Peer subscribes to
// which Track.
package sfu
