package room

import (
	"log/slog"
	"time"

	"github.com/invigil/invigil/sfu"
)

// Track is a published track as a room sees it. *sfu.Track is one;
// signaling hands them over. The room reads what it announces and what
// the media watchdog needs, nothing of the packet path.
type Track interface {
	ID() string
	// StreamID is the publisher's stream id: its participant's SID.
	StreamID() string
	Kind() sfu.Kind
	// Source says what the track carries: camera, microphone, screen or
	// talkback.
	Source() string
	// LastPacket is when the track's last packet arrived (zero before
	// the first); BytesReceived counts its bytes so far.
	LastPacket() time.Time
	BytesReceived() uint64
}

// Media is what a room needs of a participant's PeerConnection. With
// Track, it is the seam between rooms and the media engine: signaling
// adapts the engine to it, and a new engine replaces the one behind it
// without the room changing.
type Media interface {
	// Subscribe starts sending t at a quality (sfu.QualityLow, …).
	Subscribe(t Track, quality int) error
	Unsubscribe(t Track) error
	// SetQuality changes the quality of a subscribed track.
	SetQuality(trackID string, quality int) error
}

// Notifier carries the room's announcements to one participant's client.
// Calls must not block: implementations queue the message.
type Notifier interface {
	ParticipantJoined(p ParticipantInfo)
	ParticipantLeft(p ParticipantInfo, reason string)
	TrackPublished(p ParticipantInfo, t TrackInfo)
	TrackUnpublished(p ParticipantInfo, t TrackInfo)
	// Evict ends the participant's session from the server's side.
	Evict(reason string)
	// Event passes one audit event of the room to a proctor, live.
	Event(e Event)
	// Intervene passes a proctor's action to a student.
	Intervene(i Intervention)
}

// Intervention is a proctor's action as its student's client receives
// it: a ProctorMessage, a SessionEnd or a TalkbackChange.
type Intervention interface{ intervention() }

// ProctorMessage is a proctor's message to a student. ID is the seq of
// its message event: the student acknowledges it by that.
type ProctorMessage struct {
	ID   int64
	From string // the proctor's display name
	Text string
}

// SessionEnd tells a student a proctor ended its session, and why; the
// eviction follows.
type SessionEnd struct {
	From   string
	Reason string
}

// TalkbackChange tells a student a proctor started (Talking) or stopped
// talking to it; StreamID is the stream id the proctor's audio arrives
// with.
type TalkbackChange struct {
	Talking  bool
	From     string
	StreamID string
}

func (ProctorMessage) intervention() {}
func (SessionEnd) intervention()     {}
func (TalkbackChange) intervention() {}

// Reasons a participant leaves, as announced to others.
const (
	ReasonLeft       = "left"
	ReasonDisconnect = "disconnected"
	ReasonReplaced   = "replaced"
	ReasonShutdown   = "server_shutdown"
	// ReasonEnded: a proctor ended the student's session.
	ReasonEnded = "ended_by_proctor"
	// ReasonEndedByAdmin: the exam platform ended the participant's
	// session (POST /v1/rooms/{room}/participants/{identity}/end).
	ReasonEndedByAdmin = "ended_by_admin"
	// ReasonRoomEnded: the exam platform ended the room for everyone
	// (DELETE /v1/rooms/{room}).
	ReasonRoomEnded = "room_ended"
	// ReasonRevoked: the exam platform revoked the identity.
	ReasonRevoked = "revoked"
)

// Participant is one client session in a room.
type Participant struct {
	SID      string // unique on the node; the stream id of its tracks
	Identity string // the token's sub
	// Device names a student's additional device ("phone"); "" is the
	// main one. Each device is its own participant: one live session per
	// identity and device.
	Device string
	Name   string
	Role   Role
	// Record asks for this student's tracks to be recorded (the token's
	// record claim); the node may also record every room.
	Record bool
	Media  Media
	Notify Notifier
	Log    *slog.Logger
	// Require lists the sources (camera, microphone, screen) the
	// participant must publish to be admitted; see admitted.
	Require []string
	// Issued is the token's iat: a room ended at or after that second
	// refuses it (ErrRoomEnded).
	Issued time.Time
	// Conn orders the participant's connection among the node's: of two
	// joins of one identity and device, the later connection's stays,
	// whichever join finishes last (a join read late from a connection
	// the client already gave up must not replace its new one). 0 is
	// unordered: such a join replaces any session.
	Conn uint64

	// Guarded by the room's mu: what the participant publishes now and,
	// for a proctor, how it looks at students.
	tracks []Track
	// A student whose connection was lost stays for the resume window:
	// lostAt is when, resume ends the wait (nil when connected).
	lostAt    time.Time
	resume    *time.Timer
	published bool           // has published a track: a lost connection may resume
	focus     string         // identity of the focused student, "" for the grid
	tiles     map[string]int // identity → quality of visible tiles; nil: every tile visible
	talkTo    *Participant   // the student a proctor's talk-back reaches; nil: nobody
	// admitted is set once every required source was published; guarded
	// by the room's mu.
	admitted bool
	// stalled is set while the media watchdog holds a camera of the
	// student stalled; guarded by the room's mu.
	stalled bool
}

// Tile is one student tile a proctor's page shows.
type Tile struct {
	Identity string
	// Height is the tile's height in CSS pixels; tiles of at least
	// HighTileHeight get the high layer.
	Height int
}

// HighTileHeight is the tile height from which a tile gets the high
// layer: the low layer is ~180 lines, upscaling it past ~1.5× blurs.
const HighTileHeight = 270

// trackQualityLocked is the quality proctor w should receive of track t
// of student p: audio always flows; video as qualityLocked says.
func (w *Participant) trackQualityLocked(p *Participant, t Track) int {
	if t.Kind() != sfu.KindVideo {
		return sfu.QualityLow
	}
	return w.qualityLocked(p)
}

// qualityLocked is the video quality proctor w should receive of student
// p: high when focused (or in a large tile), off when scrolled out of
// view, low otherwise. The caller holds the room's mu.
func (w *Participant) qualityLocked(p *Participant) int {
	switch {
	case w.focus == p.Identity:
		return sfu.QualityHigh
	case w.tiles == nil:
		return sfu.QualityLow
	}
	q, visible := w.tiles[p.Identity]
	if !visible {
		return sfu.QualityOff
	}
	return q
}

// ParticipantInfo is what others are told of a participant.
type ParticipantInfo struct {
	SID      string      `json:"sid"`
	Identity string      `json:"identity"`
	Name     string      `json:"name"`
	Role     Role        `json:"role"`
	Device   string      `json:"device,omitempty"`
	Tracks   []TrackInfo `json:"tracks,omitempty"`
}

// TrackInfo is what others are told of a published track.
type TrackInfo struct {
	TrackID  string `json:"track_id"`
	StreamID string `json:"stream_id"`
	Kind     string `json:"kind"`
	Source   string `json:"source"`
}

func trackInfo(t Track) TrackInfo {
	return TrackInfo{TrackID: t.ID(), StreamID: t.StreamID(), Kind: t.Kind().String(), Source: t.Source()}
}

// infoLocked describes p; the caller holds p's room's mu.
func (p *Participant) infoLocked(withTracks bool) ParticipantInfo {
	info := ParticipantInfo{SID: p.SID, Identity: p.Identity, Name: p.Name, Role: p.Role, Device: p.Device}
	if withTracks {
		for _, t := range p.tracks {
			info.Tracks = append(info.Tracks, trackInfo(t))
		}
	}
	return info
}
