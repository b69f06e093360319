package signaling

import (
	"errors"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// The media engine as a session uses it. These two interfaces, with
// room.Track and room.Media, are the seam between signaling and rooms on
// one side and the media plane on the other (docs/architecture.md): a
// new engine is adapted here, and nothing above changes.

// Engine makes each session's media connection.
type Engine interface {
	NewPeer(cfg sfu.PeerConfig) (Peer, error)
}

// Peer is one participant's media connection as its session drives it:
// the negotiation its client's messages carry, and (room.Media) what
// the room subscribes it to. The server is the impolite side of perfect
// negotiation: HandleOffer answers sfu.ErrGlare while its own offer is
// out.
type Peer interface {
	room.Media
	// Start allows the server's own offers; a session starts its peer
	// once the client has been told it joined.
	Start() error
	HandleOffer(sdp string, sources map[string]string) error
	HandleAnswer(sdp string) error
	AddCandidate(c sfu.Candidate) error
	Close() error
}

// SFU adapts the node's media engine to Engine.
func SFU(e *sfu.Engine) Engine { return sfuEngine{e} }

type sfuEngine struct{ e *sfu.Engine }

func (a sfuEngine) NewPeer(cfg sfu.PeerConfig) (Peer, error) {
	p, err := a.e.NewPeer(cfg)
	if err != nil {
		return nil, err
	}
	return sfuPeer{p}, nil
}

// sfuPeer is an *sfu.Peer whose subscriptions take the room's tracks:
// every room.Track of a node is an *sfu.Track, handed to the room by
// this engine's OnTrack.
type sfuPeer struct{ *sfu.Peer }

// errForeignTrack is a subscription to a track this engine did not make.
var errForeignTrack = errors.New("signaling: the track is not the media engine's")

func (p sfuPeer) Subscribe(t room.Track, quality int) error {
	st, ok := t.(*sfu.Track)
	if !ok {
		return errForeignTrack
	}
	return p.Peer.Subscribe(st, quality)
}

func (p sfuPeer) Unsubscribe(t room.Track) error {
	st, ok := t.(*sfu.Track)
	if !ok {
		return errForeignTrack
	}
	return p.Peer.Unsubscribe(st)
}

var (
	_ room.Track = (*sfu.Track)(nil)
	_ Peer       = sfuPeer{}
	_ Engine     = sfuEngine{}
)
