// Package signaling is the WebSocket endpoint GET /v1/rtc: the JSON
// protocol of docs/protocol.md, join-token verification, and one session
// per connection that ties a client to its room and its PeerConnection.
//
// Each session runs a reader and a writer in an errgroup; every outbound
// message goes through a bounded queue, so a slow client is dropped rather
// than stalling the room that announces to it. signaling imports room and
// sfu; it must not import cluster, metrics, web or cmd.
package signaling
