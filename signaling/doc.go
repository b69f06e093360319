// Package signaling is the WebSocket endpoint GET /v1/rtc: the JSON
// protocol of docs/protocol.md, join-token verification, and one session
// per connection that ties a client to its room and its PeerConnection.
//
// Each session runs a reader and a writer in an errgroup; every outbound
// message goes through a bounded queue, so a slow client is dropped rather
// than stalling the room that announces to it. Each client message type
// is declared once, in dispatch.go's table. The media engine is used
// through Engine and Peer (media.go), which SFU adapts *sfu.Engine to.
// signaling imports room, sfu and internal/httpapi (BearerVerifier: the
// HTTP APIs' token check); it must not import audit, cluster, metrics,
// web or cmd.
package signaling
