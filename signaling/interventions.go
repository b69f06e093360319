package signaling

import (
	"errors"

	"github.com/invigil/invigil/room"
)

// What a proctor does to the students of its room (focus, view,
// talk-back, message, flag, note, end) and what a student's page
// reports (violations, acknowledgements). The table in dispatch.go has
// checked the sender's role and the fields.

// violationsPerMinute bounds a student's violation reports: a page
// flapping between hidden and visible must not flood the trail.
const violationsPerMinute = 30

// focus makes the proctor watch one student at the high layer.
func (s *session) focus(m *Inbound) error { return s.rm.SetFocus(s.p, *m.Identity) }

// view tells the room which student tiles the proctor shows.
func (s *session) view(m *Inbound) error {
	var tiles []room.Tile
	if m.Tiles != nil {
		tiles = make([]room.Tile, 0, len(*m.Tiles))
		for _, t := range *m.Tiles {
			tiles = append(tiles, room.Tile{Identity: t.Identity, Height: t.Height})
		}
	}
	return s.rm.SetView(s.p, tiles)
}

// talkback points the proctor's microphone at one student ("" stops).
func (s *session) talkback(m *Inbound) error {
	err := s.rm.TalkTo(s.p, *m.Identity)
	if errors.Is(err, room.ErrNoStudent) {
		return protoErr(CodeMalformed, "no student %q in this room", truncate(*m.Identity, 64))
	}
	return err
}

// intervene carries out a proctor's message, flag, note or end about one
// student of the room: an audit event first, then the student is told
// (message, end).
func (s *session) intervene(m *Inbound) error {
	target := s.rm.Student(*m.Identity)
	if target == nil {
		return protoErr(CodeMalformed, "no student %q in this room", truncate(*m.Identity, 64))
	}
	rooms, name := s.srv.cfg.Rooms, s.rm.Name()
	switch m.Type {
	case TypeMessage:
		seq := rooms.Record(name, room.EventMessage, s.p.Identity, target.Identity, map[string]any{"text": m.Text})
		target.Notify.Intervene(room.ProctorMessage{ID: seq, From: s.p.Name, Text: m.Text})
	case TypeFlag:
		rooms.Record(name, room.EventFlag, s.p.Identity, target.Identity, map[string]any{"text": m.Text})
	case TypeNote:
		rooms.Record(name, room.EventNote, s.p.Identity, target.Identity, map[string]any{"text": m.Text})
	case TypeEnd:
		rooms.Record(name, room.EventEnded, s.p.Identity, target.Identity, map[string]any{"reason": m.Text})
		for _, device := range s.rm.Students(target.Identity) { // the phone too
			device.Notify.Intervene(room.SessionEnd{From: s.p.Name, Reason: m.Text})
			device.Notify.Evict(room.ReasonEnded)
		}
	}
	return nil
}

// acknowledge records a student's acknowledgement of a message it was
// sent, once.
func (s *session) acknowledge(m *Inbound) error {
	s.messagesMu.Lock()
	sent := s.messages[m.MessageID]
	delete(s.messages, m.MessageID) // one acknowledgement each
	s.messagesMu.Unlock()
	if !sent {
		return protoErr(CodeMalformed, "no unacknowledged message %d was sent to you", m.MessageID)
	}
	s.srv.cfg.Rooms.Record(s.rm.Name(), room.EventMessageAck, s.p.Identity, s.p.Identity, map[string]any{"message_id": m.MessageID})
	return nil
}

// report records a violation a student's page saw, within its rate.
func (s *session) report(m *Inbound) error {
	if !s.violations.Allow() {
		return protoErr(CodeRateLimited, "too many violation reports; at most %d a minute", violationsPerMinute)
	}
	details := map[string]any{"kind": m.Kind}
	for k, v := range m.Details {
		if k != "kind" {
			details[k] = v
		}
	}
	s.srv.cfg.Rooms.Record(s.rm.Name(), room.EventViolation, s.p.Identity, s.p.Identity, details)
	return nil
}
