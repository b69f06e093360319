package signaling

import (
	"encoding/json"
	"fmt"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// ProtocolVersion is the `v` every frame carries (docs/protocol.md).
const ProtocolVersion = 1

// Limits of docs/protocol.md, "Limits".
const (
	// MaxFrameBytes bounds one WebSocket frame: a proctor's answer for 50
	// students × 2 m-lines is ~60 KiB; this leaves 4× headroom.
	MaxFrameBytes = 256 << 10
	// MaxSDPBytes bounds the sdp field of an offer or answer.
	MaxSDPBytes = 128 << 10
	// maxRefBytes bounds the client's request id echoed in replies.
	maxRefBytes = 64
)

// Message types, client → server and server → client.
const (
	TypeJoin              = "join"
	TypeJoined            = "joined"
	TypeOffer             = "offer"
	TypeAnswer            = "answer"
	TypeCandidate         = "candidate"
	TypePing              = "ping"
	TypePong              = "pong"
	TypeLeave             = "leave"
	TypeError             = "error"
	TypeParticipantJoined = "participant_joined"
	TypeParticipantLeft   = "participant_left"
	TypeTrackPublished    = "track_published"
	TypeTrackUnpublished  = "track_unpublished"
	TypeFocus             = "focus"
	TypeView              = "view"
	TypeLayers            = "layers"
	TypeEvent             = "event"
	// Proctor interventions and student reports (docs/protocol.md).
	TypeMessage    = "message"
	TypeMessageAck = "message_ack"
	TypeFlag       = "flag"
	TypeNote       = "note"
	TypeEnd        = "end"
	TypeEnded      = "ended"
	TypeViolation  = "violation"
	// TypeTalkback: a proctor starts (identity) or stops ("") talking to
	// one student; the student is told with the same type.
	TypeTalkback = "talkback"
	// TypeDeviceLink: a student asks for (and receives) a link that adds
	// a phone as a second camera.
	TypeDeviceLink = "device_link"
)

// maxTiles bounds a view message: a proctor's grid of a full room.
const maxTiles = 500

// Inbound is any client frame: the envelope plus the fields of every
// client message type. Unknown fields are ignored.
type Inbound struct {
	V    *int   `json:"v"`
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`

	Token     string         `json:"token,omitempty"`     // join
	Room      string         `json:"room,omitempty"`      // join
	SDP       string         `json:"sdp,omitempty"`       // offer, answer
	Tracks    []TrackSource  `json:"tracks,omitempty"`    // offer
	Candidate *sfu.Candidate `json:"candidate,omitempty"` // candidate
	TS        json.Number    `json:"ts,omitempty"`        // ping
	Identity  *string        `json:"identity,omitempty"`  // focus, talkback, interventions
	Tiles     *[]ViewTile    `json:"tiles,omitempty"`     // view; null: all visible
	// Interventions (proctor) and reports (student).
	Text      string         `json:"text,omitempty"`       // message, note, flag, end
	MessageID int64          `json:"message_id,omitempty"` // message_ack
	Kind      string         `json:"kind,omitempty"`       // violation
	Details   map[string]any `json:"details,omitempty"`    // violation
}

// Interventions' limits.
const (
	maxTextBytes     = 2000
	maxDetailsBytes  = 2048
	maxViolationKind = 64
)

// ViewTile is one visible student tile in a view message.
type ViewTile struct {
	Identity string `json:"identity"`
	Height   int    `json:"height,omitempty"`
}

// TrackSource names what one m-line of a client's offer carries.
type TrackSource struct {
	Mid    string `json:"mid"`
	Source string `json:"source"`
}

// validSources are the labels a client may give its tracks.
var validSources = map[string]bool{"camera": true, "microphone": true, "screen": true, room.SourceTalkback: true}

// DecodeInbound parses and checks one client frame: the envelope, then
// the fields its type needs (clientMessages). The returned error is a
// *ProtocolError with the code to send back.
func DecodeInbound(b []byte) (*Inbound, error) {
	var m Inbound
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, protoErr(CodeMalformed, "frame is not a valid message object: %v", err)
	}
	if len(m.ID) > maxRefBytes {
		return nil, protoErr(CodeMalformed, "id longer than %d bytes", maxRefBytes)
	}
	if m.V != nil && *m.V != ProtocolVersion {
		return &m, protoErr(CodeUnsupportedVersion, "protocol version %d is not supported; use %d", *m.V, ProtocolVersion)
	}
	if m.Type == "" {
		return &m, protoErr(CodeUnknownType, "message has no type")
	}
	cm, ok := clientMessages[m.Type]
	if !ok {
		return &m, protoErr(CodeUnknownType, "unknown message type %q", truncate(m.Type, 32))
	}
	if cm.check != nil {
		if err := cm.check(&m); err != nil {
			return &m, err
		}
	}
	return &m, nil
}

// validKind accepts snake_case kinds such as tab_hidden.
func validKind(k string) bool {
	if k == "" || len(k) > maxViolationKind {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// InterventionMessage is a proctor's action as its student receives it.
type InterventionMessage struct {
	Envelope
	MessageID int64  `json:"message_id,omitempty"`
	From      string `json:"from,omitempty"`
	Text      string `json:"text,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Talk-back: whether the proctor speaks now, and the stream id their
	// audio track carries.
	Talking  *bool  `json:"talking,omitempty"`
	StreamID string `json:"stream_id,omitempty"`
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Envelope starts every server frame.
type Envelope struct {
	V    int    `json:"v"`
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
}

func envelope(typ, ref string) Envelope { return Envelope{V: ProtocolVersion, Type: typ, Ref: ref} }

// ICEServer is one entry of RTCConfiguration.iceServers.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Joined answers a successful join.
type Joined struct {
	Envelope
	Room          string                 `json:"room"`
	Participant   room.ParticipantInfo   `json:"participant"`
	Participants  []room.ParticipantInfo `json:"participants"`
	ICEServers    []ICEServer            `json:"ice_servers"`
	ServerVersion string                 `json:"server_version"`
	// Require lists what a student must publish to be admitted (camera,
	// microphone, screen): its page asks for each.
	Require []string `json:"require,omitempty"`
}

// SDPMessage is an offer or answer.
type SDPMessage struct {
	Envelope
	SDP string `json:"sdp"`
}

// CandidateMessage trickles one ICE candidate.
type CandidateMessage struct {
	Envelope
	Candidate sfu.Candidate `json:"candidate"`
}

// Pong answers a ping.
type Pong struct {
	Envelope
	TS json.Number `json:"ts,omitempty"`
}

// ParticipantMessage announces a participant joining or leaving.
type ParticipantMessage struct {
	Envelope
	Participant room.ParticipantInfo `json:"participant"`
	Reason      string               `json:"reason,omitempty"`
}

// TrackMessage announces a track published or unpublished.
type TrackMessage struct {
	Envelope
	ParticipantSID string         `json:"participant_sid"`
	Identity       string         `json:"identity"`
	Track          room.TrackInfo `json:"track"`
}

// LayersMessage tells a publisher which simulcast layers of one of its
// tracks someone watches; it should pause the others.
type LayersMessage struct {
	Envelope
	Mid     string   `json:"mid"`
	TrackID string   `json:"track_id"`
	Active  []string `json:"active"`
}

// EventMessage passes one audit event of the room to a proctor.
type EventMessage struct {
	Envelope
	Event room.Event `json:"event"`
}

// LeaveMessage tells the client the server ends its session.
type LeaveMessage struct {
	Envelope
	Reason string `json:"reason"`
}

// ErrorMessage reports a failed request.
type ErrorMessage struct {
	Envelope
	Code    string `json:"code"`
	Message string `json:"message"`
	// URL is the node to join instead, with code redirect.
	URL string `json:"url,omitempty"`
}

// ProtocolError is an error with its wire code.
type ProtocolError struct {
	Code    string
	Message string
	URL     string // redirect target
	// Fatal closes the connection even when Code usually does not.
	Fatal bool
}

func (e *ProtocolError) Error() string { return e.Code + ": " + e.Message }

func protoErr(code, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Message: fmt.Sprintf(format, args...)}
}
