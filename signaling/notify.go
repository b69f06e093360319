package signaling

import (
	"encoding/json"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/room"
)

// The room's announcements to one client (room.Notifier). What reaches a
// session before its joined reply (a proctor's own join event, a
// talk-back that carries on from a student's previous session) waits for
// that reply, so a client never hears of the room before it joined.

var _ room.Notifier = (*session)(nil)

// maxEarlyEvents bounds what is held for a client before its joined
// reply: its own join and whatever the room did in those microseconds.
const maxEarlyEvents = 32

// maxUnacked bounds the unacknowledged messages a session remembers.
const maxUnacked = 100

// ParticipantJoined implements room.Notifier.
func (s *session) ParticipantJoined(p room.ParticipantInfo) {
	s.send(ParticipantMessage{Envelope: envelope(TypeParticipantJoined, ""), Participant: p})
}

// ParticipantLeft implements room.Notifier.
func (s *session) ParticipantLeft(p room.ParticipantInfo, reason string) {
	s.send(ParticipantMessage{Envelope: envelope(TypeParticipantLeft, ""), Participant: p, Reason: reason})
}

// TrackPublished implements room.Notifier.
func (s *session) TrackPublished(p room.ParticipantInfo, t room.TrackInfo) {
	s.send(TrackMessage{Envelope: envelope(TypeTrackPublished, ""), ParticipantSID: p.SID, Identity: p.Identity, Track: t})
}

// TrackUnpublished implements room.Notifier.
func (s *session) TrackUnpublished(p room.ParticipantInfo, t room.TrackInfo) {
	s.send(TrackMessage{Envelope: envelope(TypeTrackUnpublished, ""), ParticipantSID: p.SID, Identity: p.Identity, Track: t})
}

// Event implements room.Notifier: one audit event, live, to a proctor.
func (s *session) Event(e room.Event) {
	s.sendJoined(EventMessage{Envelope: envelope(TypeEvent, ""), Event: e})
}

// Intervene implements room.Notifier: a proctor's message, end or
// talk-back, as this student's client receives it.
func (s *session) Intervene(i room.Intervention) {
	var msg InterventionMessage
	switch i := i.(type) {
	case room.ProctorMessage:
		msg = InterventionMessage{Envelope: envelope(TypeMessage, ""), MessageID: i.ID, From: i.From, Text: i.Text}
		if i.ID > 0 {
			s.messagesMu.Lock()
			if s.messages == nil {
				s.messages = map[int64]bool{}
			}
			if len(s.messages) < maxUnacked {
				s.messages[i.ID] = true
			}
			s.messagesMu.Unlock()
		}
	case room.SessionEnd:
		msg = InterventionMessage{Envelope: envelope(TypeEnded, ""), From: i.From, Reason: i.Reason}
	case room.TalkbackChange:
		msg = InterventionMessage{Envelope: envelope(TypeTalkback, ""), From: i.From, Talking: &i.Talking, StreamID: i.StreamID}
	default:
		s.log.Error("intervention of an unknown kind not delivered", "intervention", i)
		return
	}
	s.sendJoined(msg)
}

// sendJoined sends msg now if the client has its joined reply, else
// right after it.
func (s *session) sendJoined(msg any) {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	if !s.eventsLive {
		if len(s.eventsEarly) < maxEarlyEvents {
			s.eventsEarly = append(s.eventsEarly, msg)
		}
		return
	}
	s.send(msg)
}

// startEvents sends what was held for the joined reply, and everything
// later at once.
func (s *session) startEvents() {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	s.eventsLive = true
	for _, m := range s.eventsEarly {
		s.send(m)
	}
	s.eventsEarly = nil
}

// Evict implements room.Notifier: the server ends this session.
func (s *session) Evict(reason string) {
	frame, _ := json.Marshal(LeaveMessage{Envelope: envelope(TypeLeave, ""), Reason: reason})
	status := websocket.StatusNormalClosure
	if reason == room.ReasonShutdown {
		status = websocket.StatusGoingAway
	}
	s.finish(frame, status, reason, reason)
}
