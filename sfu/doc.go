// Package sfu is Invigil's media plane: PeerConnections on one shared ICE
// UDP port and one ICE-TCP port, the readers of published tracks, and the
// per-subscriber down-tracks that forward RTP to them without decoding.
//
// It owns the hot path (RTP in → RTP out): one reader goroutine per
// published track, owning one buffer and one reused rtp.Packet, fans each
// packet out to an immutable subscriber slice held behind an atomic.Pointer.
// Nothing on that path locks, logs, looks up a map or allocates.
//
// sfu knows only pion. It must not import any other Invigil package and
// knows nothing of rooms, roles, tokens or Redis: whoever uses it decides
// which Peer subscribes to which Track.
package sfu
