// Package loadtest runs synthetic students and proctors against an Invigil
// node, for `invigil load` and the benchmarks in docs/benchmarks.md.
//
// It owns the synthetic participants and their measurements: students
// join over the signaling WebSocket (docs/protocol.md) and publish
// VP8-shaped video (RFC 7741 payload descriptors with picture ID,
// TL0PICIDX and an L1T3 temporal pattern on the low layer, a keyframe
// every two seconds and on PLI/FIR) and Opus-shaped audio at the exam
// workload's bitrates (docs/benchmarks.md); proctors answer the server's offers, receive every student of
// their room and measure packets, loss after retransmission, one-way delay
// (each payload carries its send time on the run's clock), join time and
// focus switch time.
//
// Two clients carry the media. The lean one (lean*.go, the default) is
// the load generator's own: one shared UDP socket (internal/lanes), each
// participant on its own 127/8 address, one receive loop, one pacer and
// one control loop for everyone, ICE and RTCP of its own, pion/dtls for
// the handshakes and pion/srtp for the contexts. The pion one
// (peer.go, student.go, sender.go) is a pion PeerConnection per
// participant, an independent implementation to check the lean one
// against.
//
// It is an independent client of the wire protocol: it imports no other
// Invigil package and declares its own small wire structs (wire.go). It
// reads no flags or environment (cmd/invigil does) and has no
// package-level mutable state. Media goes over loopback only: the pion
// peers' sockets are bound to 127.0.0.1, the lean socket to the loopback
// device, and only loopback candidates are used,
// so the only targets are the node's signaling URL and loopback.
package loadtest
