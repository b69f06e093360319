package loadtest

import "github.com/pion/webrtc/v4"

// The wire structs of docs/protocol.md this client needs, declared here
// so the package stays an independent client of the protocol. Unknown
// fields are ignored on both sides.

// protocolVersion is the `v` of every frame (docs/protocol.md, Versioning).
const protocolVersion = 1

// Message types used here.
const (
	typeJoin              = "join"
	typeJoined            = "joined"
	typeOffer             = "offer"
	typeAnswer            = "answer"
	typeCandidate         = "candidate"
	typeLeave             = "leave"
	typeError             = "error"
	typeFocus             = "focus"
	typeLayers            = "layers"
	typeParticipantJoined = "participant_joined"
	typeParticipantLeft   = "participant_left"
	typeTrackPublished    = "track_published"
)

// outMsg is any frame this client sends; empty fields are left out.
type outMsg struct {
	V         int                      `json:"v"`
	Type      string                   `json:"type"`
	ID        string                   `json:"id,omitempty"`
	Token     string                   `json:"token,omitempty"`
	Room      string                   `json:"room,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Tracks    []trackSource            `json:"tracks,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Identity  *string                  `json:"identity,omitempty"`
}

// trackSource names what one m-line of a student's offer carries.
type trackSource struct {
	Mid    string `json:"mid"`
	Source string `json:"source"`
}

// inMsg is any server frame, with the fields of the types used here.
type inMsg struct {
	Type           string                   `json:"type"`
	Code           string                   `json:"code"`
	Message        string                   `json:"message"`
	Reason         string                   `json:"reason"`
	SDP            string                   `json:"sdp"`
	Candidate      *webrtc.ICECandidateInit `json:"candidate"`
	Participant    participantInfo          `json:"participant"`
	Participants   []participantInfo        `json:"participants"`
	ParticipantSID string                   `json:"participant_sid"`
	Identity       string                   `json:"identity"`
	Track          trackInfo                `json:"track"`
	Mid            string                   `json:"mid"`
	Active         []string                 `json:"active"`
}

// participantInfo is a participant as joined and the announcements
// describe it.
type participantInfo struct {
	SID      string      `json:"sid"`
	Identity string      `json:"identity"`
	Role     string      `json:"role"`
	Tracks   []trackInfo `json:"tracks"`
}

// trackInfo is a published track; StreamID is the publisher's sid.
type trackInfo struct {
	TrackID  string `json:"track_id"`
	StreamID string `json:"stream_id"`
	Kind     string `json:"kind"`
	Source   string `json:"source"`
}
