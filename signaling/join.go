package signaling

import (
	"context"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// ownerTimeout bounds the cluster lookup a join waits for.
const ownerTimeout = 2 * time.Second

// join verifies the token, finds the node that holds the room, makes the
// PeerConnection and enters the room; then the client is told it joined
// and only then may the Peer offer.
func (s *session) join(m *Inbound) error {
	start := time.Now()
	grant, err := s.admit(m)
	if err != nil {
		return err
	}
	claimed, err := s.redirect(grant.Room)
	if err != nil {
		return err
	}
	// A seat claimed for this join is arriving until the participant is
	// in the room (entering runs inside Arrive) or the join failed.
	arrive := func(enter func()) {
		if claimed {
			claimed = false
			s.srv.cfg.Owners.Arrive(enter)
		} else if enter != nil {
			enter()
		}
	}
	defer arrive(nil)
	sid := newSID()
	log := s.srv.log.With("room", grant.Room, "identity", grant.Identity, "role", string(grant.Role), "sid", sid)
	if grant.Device != "" {
		log = log.With("device", grant.Device)
	}
	p := &room.Participant{SID: sid, Identity: grant.Identity, Device: grant.Device, Name: grant.Name, Role: grant.Role, Record: grant.Record,
		Require: grant.Require, Issued: grant.Issued, Conn: s.order, Notify: s, Log: log}
	peer, err := s.srv.cfg.Engine.NewPeer(s.peerConfig(p, start))
	if err != nil {
		return err
	}
	p.Media = peer
	s.p, s.peer = p, peer
	var (
		rm   *room.Room
		view []room.ParticipantInfo
	)
	arrive(func() { rm, view, err = s.srv.cfg.Rooms.Join(grant.Room, p) })
	if err != nil {
		return err
	}
	s.rm = rm
	s.log = log
	s.grant = grant
	s.joined.Store(true)
	s.joinWait.Stop()

	var ice []ICEServer
	if s.srv.cfg.ICEServers != nil {
		ice = s.srv.cfg.ICEServers(grant.Identity, grant.Expires)
	}
	if ice == nil {
		ice = []ICEServer{}
	}
	s.send(Joined{
		Envelope:      envelope(TypeJoined, m.ID),
		Room:          rm.Name(),
		Participant:   room.ParticipantInfo{SID: sid, Identity: grant.Identity, Name: grant.Name, Role: grant.Role, Device: grant.Device},
		Participants:  view,
		ICEServers:    ice,
		ServerVersion: s.srv.cfg.Version,
		Require:       grant.Require,
	})
	s.startEvents()
	log.Info("joined", "remote", s.remote)
	return peer.Start()
}

// admit checks the join's token and room.
func (s *session) admit(m *Inbound) (Grant, error) {
	grant, err := VerifyToken(s.srv.cfg.Secret, m.Token)
	if err != nil {
		return Grant{}, err
	}
	if m.Room != "" && m.Room != grant.Room {
		return Grant{}, ErrRoomMismatch
	}
	if grant.Role == room.RoleAdmin {
		// Fatal: an admin token is the API tier's, never a media client's.
		return Grant{}, &ProtocolError{Code: CodeForbidden, Message: "admin tokens do not join media", Fatal: true}
	}
	if grant.Role == room.RoleReviewer {
		// A reviewer judges the session afterwards, from its trail and
		// recordings; it never watches live media.
		return Grant{}, &ProtocolError{Code: CodeForbidden, Message: "reviewer tokens do not join media", Fatal: true}
	}
	if g := s.srv.cfg.Gate; g != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ownerTimeout)
		err := g.Admit(ctx, grant.Room, grant.Identity, grant.Issued)
		cancel()
		if err != nil {
			return Grant{}, err
		}
	}
	return grant, nil
}

// redirect asks the cluster (when there is one) who holds roomName: a
// room another node holds is answered with a redirect there. With the
// store down, a room this node already holds goes on; others wait.
// claimed says the cluster answered this node (local): see Owners.Arrive.
func (s *session) redirect(roomName string) (claimed bool, err error) {
	o := s.srv.cfg.Owners
	if o == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ownerTimeout)
	url, local, err := o.Owner(ctx, roomName)
	cancel()
	switch {
	case err != nil && !s.srv.cfg.Rooms.Has(roomName):
		s.log.Warn("join refused: the cluster store cannot say who holds the room", "room", roomName, "err", err)
		return false, protoErr(CodeUnavailable, "the cluster cannot place room %q right now; retry shortly", roomName)
	case err == nil && !local:
		return false, &ProtocolError{Code: CodeRedirect, Message: "another node holds this room; join there", URL: url}
	}
	return err == nil, nil
}

// peerConfig is participant p's PeerConnection: what it publishes goes
// to the room, its connection's state to the trail and the metrics.
// The callbacks run on the engine's goroutines, after join has set
// s.rm (a track needs an answered offer, which needs joined).
func (s *session) peerConfig(p *room.Participant, joinStart time.Time) sfu.PeerConfig {
	log := p.Log
	return sfu.PeerConfig{
		ID:      p.SID,
		Signal:  s,
		Logger:  log,
		Publish: p.Role.CanPublish(),
		OnLayerDemand: func(t *sfu.Track, active []string) {
			s.send(LayersMessage{Envelope: envelope(TypeLayers, ""), Mid: t.Mid(), TrackID: t.ID(), Active: active})
		},
		OnTrack: func(t *sfu.Track) {
			if !p.Role.CanPublish() && t.Source() != room.SourceTalkback {
				return
			}
			if err := s.rm.Publish(p, t); err != nil {
				log.Debug("publish after leave", "track", t.ID(), "err", err)
			}
		},
		OnTrackEnded: func(t *sfu.Track) { s.rm.Unpublish(p, t) },
		OnICEConnected: func(candidateType string) {
			s.srv.obs.ICEConnection(true, candidateType)
			log.Debug("media connected", "candidate_type", candidateType)
		},
		OnFirstForward: func(*sfu.Track) {
			if s.firstMedia.CompareAndSwap(false, true) {
				s.srv.obs.JoinToMedia(time.Since(joinStart))
			}
		},
		OnConnectionState: func(st sfu.ConnState) {
			s.mediaState(st)
			if st == sfu.ConnFailed {
				s.srv.obs.ICEConnection(false, "unknown")
				log.Warn("media connection failed")
				s.finish(nil, websocket.StatusNormalClosure, "media failed", room.ReasonDisconnect)
			}
		},
	}
}

// newSID names a participant session.
func newSID() string { return "PA_" + randomID() }
