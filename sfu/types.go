package sfu

import "github.com/pion/rtp"

// The media plane's own vocabulary. Callers (room, signaling, record) see
// these types, never pion/webrtc's, so the engine behind them can change
// without touching its users.

// Kind is a track's media kind.
type Kind uint8

// Media kinds.
const (
	KindAudio Kind = iota + 1
	KindVideo
)

// String is "audio" or "video", as in SDP's m= lines.
func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	}
	return "unknown"
}

// Codec is the codec a publisher sends, as negotiated in its SDP
// (RFC 8866 §6.6 rtpmap and fmtp). Subscribers receive the same codec:
// the SFU never transcodes.
type Codec struct {
	MimeType    string // "video/VP8", "video/H264", "audio/opus"
	ClockRate   uint32
	Channels    uint16 // audio only
	PayloadType uint8  // the publisher's
	Fmtp        string // the a=fmtp parameters, e.g. H.264's profile-level-id
}

// Candidate is one trickled ICE candidate as a browser's
// RTCIceCandidateInit serialises it (the JSON of the signaling protocol's
// candidate message).
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex"`
	UsernameFragment *string `json:"usernameFragment"`
}

// ConnState is the state of a Peer's media connection (the transport
// under every track: ICE, DTLS and SRTP together), as a browser's
// RTCPeerConnection.connectionState names them.
type ConnState int

// Connection states.
const (
	ConnNew ConnState = iota
	ConnConnecting
	ConnConnected
	// ConnDisconnected: no packet from the client for a while; it may
	// come back (a Wi-Fi drop) or fail.
	ConnDisconnected
	// ConnFailed: given up; the client must join again.
	ConnFailed
	ConnClosed
)

// String names the state as the W3C enum does.
func (s ConnState) String() string {
	switch s {
	case ConnNew:
		return "new"
	case ConnConnecting:
		return "connecting"
	case ConnConnected:
		return "connected"
	case ConnDisconnected:
		return "disconnected"
	case ConnFailed:
		return "failed"
	case ConnClosed:
		return "closed"
	}
	return "unknown"
}

// RTPWriter receives the packets of a tap (Track.Tap): the header and the
// payload of each, which are only valid during the call.
type RTPWriter interface {
	WriteRTP(h *rtp.Header, payload []byte) (int, error)
}
