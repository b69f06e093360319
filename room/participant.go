package room

import (
	"log/slog"

	"github.com/invigil/invigil/sfu"
)

// Media is what a room needs of a participant's PeerConnection.
type Media interface {
	Subscribe(t *sfu.Track) error
	Unsubscribe(t *sfu.Track) error
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
}

// Reasons a participant leaves, as announced to others.
const (
	ReasonLeft       = "left"
	ReasonDisconnect = "disconnected"
	ReasonReplaced   = "replaced"
	ReasonShutdown   = "server_shutdown"
)

// Participant is one client session in a room.
type Participant struct {
	SID      string // unique on the node; the stream id of its tracks
	Identity string // the token's sub
	Name     string
	Role     Role
	Media    Media
	Notify   Notifier
	Log      *slog.Logger

	// tracks is what the participant publishes now; guarded by the
	// room's mu.
	tracks []*sfu.Track
}

// ParticipantInfo is what others are told of a participant.
type ParticipantInfo struct {
	SID      string      `json:"sid"`
	Identity string      `json:"identity"`
	Name     string      `json:"name"`
	Role     Role        `json:"role"`
	Tracks   []TrackInfo `json:"tracks,omitempty"`
}

// TrackInfo is what others are told of a published track.
type TrackInfo struct {
	TrackID  string `json:"track_id"`
	StreamID string `json:"stream_id"`
	Kind     string `json:"kind"`
	Source   string `json:"source"`
}

func trackInfo(t *sfu.Track) TrackInfo {
	return TrackInfo{TrackID: t.ID(), StreamID: t.StreamID(), Kind: t.Kind().String(), Source: t.Source()}
}

// infoLocked describes p; the caller holds p's room's mu.
func (p *Participant) infoLocked(withTracks bool) ParticipantInfo {
	info := ParticipantInfo{SID: p.SID, Identity: p.Identity, Name: p.Name, Role: p.Role}
	if withTracks {
		for _, t := range p.tracks {
			info.Tracks = append(info.Tracks, trackInfo(t))
		}
	}
	return info
}
