// Package loadtest runs synthetic students and proctors against an Invigil
// node, for `invigil load` and the benchmarks in docs/benchmarks.md.
//
// It owns the synthetic participants and their measurements: students are
// pion PeerConnections that join over the signaling WebSocket
// (docs/protocol.md) and publish VP8-shaped video (RFC 7741 payload
// descriptors, a keyframe every two seconds and on PLI/FIR) and
// Opus-shaped audio at the DESIGN.md bitrates; proctors answer the
// server's offers, receive every student of their room and measure
// packets, loss after retransmission, one-way delay (each payload carries
// its send time; sender and receiver share this host's clock), join time
// and focus switch time. All peers share one webrtc.API and one DTLS
// certificate, and one goroutine drives every student's sending, so the
// load generator costs little next to the server it measures. (They do
// not share a UDP socket: see peerKit.)
//
// It is an independent client of the wire protocol: it imports no other
// Invigil package and declares its own small wire structs (wire.go). It
// reads no flags or environment (cmd/invigil does) and has no
// package-level mutable state. Media goes over loopback only: the peers'
// sockets are bound to 127.0.0.1 and only loopback candidates are used,
// so the only targets are the node's signaling URL and loopback.
package loadtest
