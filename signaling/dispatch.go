package signaling

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/invigil/invigil/room"
)

// clientMessage declares one client message type: who may send it, how
// its fields are checked and what a session does with it. Decoding
// (DecodeInbound), the metrics' type label (ClientMessageTypes), the
// check of docs/protocol.md and dispatch all read clientMessages, so a
// new type is one entry here (and its fields in Inbound).
type clientMessage struct {
	// first marks join: the one type sent before joining, and only then.
	first bool
	// roles may send it once joined; others get forbidden, refusal.
	roles   []room.Role
	refusal string
	// check validates the type's fields after the envelope; nil: none.
	check func(*Inbound) error
	// handle carries it out, on the session's reader goroutine.
	handle func(*session, *Inbound) error
}

// clientMessages is the table of client message types (docs/protocol.md,
// "Client → server"). It is never written after initialisation.
var clientMessages = map[string]clientMessage{
	TypeJoin: {first: true, handle: (*session).join},
	TypeOffer: {roles: []room.Role{room.RoleStudent, room.RoleProctor}, refusal: "only students and proctors send media",
		check: checkSDP, handle: (*session).handleOffer},
	TypeAnswer: {roles: []room.Role{room.RoleStudent, room.RoleProctor},
		check: checkSDP, handle: (*session).handleAnswer},
	TypeCandidate: {roles: []room.Role{room.RoleStudent, room.RoleProctor}, handle: (*session).handleCandidate},
	TypePing:      {roles: []room.Role{room.RoleStudent, room.RoleProctor}, handle: (*session).ping},
	TypeLeave:     {roles: []room.Role{room.RoleStudent, room.RoleProctor}, handle: (*session).leave},
	TypeFocus: {roles: []room.Role{room.RoleProctor}, refusal: "only a proctor chooses whom to focus",
		check: needIdentity(`focus needs identity ("" for the grid)`), handle: (*session).focus},
	TypeView: {roles: []room.Role{room.RoleProctor}, refusal: "only a proctor has a view of students",
		check: checkView, handle: (*session).view},
	TypeTalkback: {roles: []room.Role{room.RoleProctor}, refusal: "only a proctor talks to a student",
		check: needIdentity(`talkback needs identity ("" to stop)`), handle: (*session).talkback},
	TypeMessage: intervention, TypeFlag: intervention, TypeNote: intervention, TypeEnd: intervention,
	TypeMessageAck: {roles: []room.Role{room.RoleStudent}, refusal: "only a student acknowledges a message",
		check: checkAck, handle: (*session).acknowledge},
	TypeViolation: {roles: []room.Role{room.RoleStudent}, refusal: "only a student's page reports violations",
		check: checkViolation, handle: (*session).report},
	TypeDeviceLink: {roles: []room.Role{room.RoleStudent}, refusal: "only a student's main device adds another",
		handle: (*session).deviceLink},
}

// intervention is a proctor's message, flag, note or end about a student.
var intervention = clientMessage{roles: []room.Role{room.RoleProctor}, refusal: "only a proctor may message, flag, note or end a student",
	check: checkIntervention, handle: (*session).intervene}

// ClientMessageTypes lists the client message types, the values of the
// metrics' type label besides "invalid" (so its cardinality stays
// bounded).
func ClientMessageTypes() []string { return slices.Sorted(maps.Keys(clientMessages)) }

// ClientMessageRoles says which roles may send each client message type
// once joined (join: none; it is the first frame of any role), for the
// check of docs/protocol.md's table.
func ClientMessageRoles() map[string][]room.Role {
	out := make(map[string][]room.Role, len(clientMessages))
	for typ, cm := range clientMessages {
		out[typ] = slices.Clone(cm.roles)
	}
	return out
}

// dispatch carries out a decoded frame: join first and only once, then
// each type from the roles its entry allows.
func (s *session) dispatch(m *Inbound) error {
	cm, ok := clientMessages[m.Type]
	switch {
	case !ok || cm.handle == nil:
		// DecodeInbound refuses unknown types; a table entry without a
		// handler is a bug, never a silent success.
		return protoErr(CodeInternal, "message type %q has no handler", truncate(m.Type, 32))
	case !s.joined.Load() && !cm.first:
		return protoErr(CodeJoinRequired, "send join with a token first")
	case s.joined.Load() && cm.first:
		return protoErr(CodeAlreadyJoined, "this connection has joined already")
	case !cm.first && !slices.Contains(cm.roles, s.p.Role):
		return protoErr(CodeForbidden, "%s", cm.refusal)
	}
	return cm.handle(s, m)
}

// handle decodes and dispatches one client frame, answers a failure with
// its error, and counts the frame. It runs on the reader goroutine.
func (s *session) handle(b []byte) {
	m, err := DecodeInbound(b)
	typ, ref := "invalid", ""
	if m != nil {
		ref = m.ID
		if _, known := clientMessages[m.Type]; known {
			typ = m.Type
		}
	}
	if err == nil {
		err = s.dispatch(m)
	}
	s.srv.obs.Message(typ, err == nil)
	if err != nil {
		if code, _ := wireError(err); code == CodeForbidden && s.rm != nil {
			s.recordForbidden(typ)
		}
		s.reject(err, ref)
	}
}

// recordForbidden writes a forbidden request to the trail, within the
// session's budget; beyond it the request is only counted, and the next
// event written carries the count as details.suppressed.
func (s *session) recordForbidden(typ string) {
	if !s.forbidden.Allow() {
		s.suppressed++
		return
	}
	details := map[string]any{"request": typ}
	if s.suppressed > 0 {
		details["suppressed"] = s.suppressed
		s.suppressed = 0
	}
	s.rm.Record(room.EventForbidden, s.p.Identity, "", details)
}

// The field checks of the table.

// checkSDP: an offer or answer carries SDP within the limit, and names
// its tracks' sources from the known ones.
func checkSDP(m *Inbound) error {
	if m.SDP == "" {
		return protoErr(CodeMalformed, "%s without sdp", m.Type)
	}
	if len(m.SDP) > MaxSDPBytes {
		return protoErr(CodeSDPTooLarge, "sdp is %d bytes; the limit is %d", len(m.SDP), MaxSDPBytes)
	}
	for _, t := range m.Tracks {
		if !validSources[t.Source] {
			return protoErr(CodeMalformed, "track source %q is not camera, microphone, screen or talkback", truncate(t.Source, 32))
		}
	}
	return nil
}

// needIdentity: the identity field must be present ("" is a value).
func needIdentity(msg string) func(*Inbound) error {
	return func(m *Inbound) error {
		if m.Identity == nil {
			return protoErr(CodeMalformed, "%s", msg)
		}
		return nil
	}
}

func checkView(m *Inbound) error {
	if m.Tiles != nil && len(*m.Tiles) > maxTiles {
		return protoErr(CodeMalformed, "view lists %d tiles; the limit is %d", len(*m.Tiles), maxTiles)
	}
	return nil
}

func checkIntervention(m *Inbound) error {
	if m.Identity == nil || *m.Identity == "" {
		return protoErr(CodeMalformed, "%s needs the student's identity", m.Type)
	}
	if len(m.Text) > maxTextBytes {
		return protoErr(CodeMalformed, "text is %d bytes; the limit is %d", len(m.Text), maxTextBytes)
	}
	if m.Type == TypeMessage && m.Text == "" {
		return protoErr(CodeMalformed, "message needs text")
	}
	return nil
}

func checkAck(m *Inbound) error {
	if m.MessageID <= 0 {
		return protoErr(CodeMalformed, "message_ack needs the message_id it acknowledges")
	}
	return nil
}

func checkViolation(m *Inbound) error {
	if !validKind(m.Kind) {
		return protoErr(CodeMalformed, "violation kind must be 1–%d of a-z, 0-9 and _", maxViolationKind)
	}
	if b, _ := json.Marshal(m.Details); len(b) > maxDetailsBytes {
		return protoErr(CodeMalformed, "violation details are %d bytes; the limit is %d", len(b), maxDetailsBytes)
	}
	return nil
}
