package room

import (
	"slices"
	"strings"
	"time"
)

// What the exam platform's API tier does to the rooms of this node
// (package roomapi serves it over HTTP): list them, look into one, end
// one for everyone, end one participant, message students, cut off a
// revoked identity. Each change is an admin_action event naming the
// admin token's subject.

// Admin actions, in admin_action's details.
const (
	ActionEndRoom        = "end_room"
	ActionEndParticipant = "end_participant"
	ActionMessage        = "message"
	ActionRevoke         = "revoke"
	ActionLift           = "lift"
)

// EndedMarkTTL is how long this node remembers, in memory, that a room
// was ended. The persistent marker (package roomapi's store) is what
// refuses old tokens after a restart; this one closes the window in
// which a join already past that check reaches the room as it ends.
const EndedMarkTTL = 24 * time.Hour

// endedMarks is the second each ended room was ended at, by room name;
// guarded by Rooms.mu.
type endedMarks map[string]time.Time

// refuses reports whether a token issued at issued may no longer join
// room: it was issued at or before the second the room was ended.
func (m endedMarks) refuses(room string, issued time.Time) bool {
	at, ok := m[room]
	return ok && issued.Unix() <= at.Unix()
}

// add remembers room ended at at, forgetting marks older than
// EndedMarkTTL so the map stays bounded.
func (m *endedMarks) add(room string, at time.Time) {
	if *m == nil {
		*m = endedMarks{}
	}
	for name, t := range *m {
		if time.Since(t) > EndedMarkTTL {
			delete(*m, name)
		}
	}
	(*m)[room] = at
}

// Summary is one open room, as GET /v1/rooms lists it.
type Summary struct {
	Room     string
	Students int
	Proctors int
	Started  time.Time
}

// List returns the rooms open on this node, by name.
func (r *Rooms) List() []Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Summary, 0, len(r.rooms))
	for _, rm := range r.rooms {
		s := Summary{Room: rm.name, Started: rm.started}
		s.Students, s.Proctors = rm.countRoles()
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Room, b.Room) })
	return out
}

// Member is one participant as GET /v1/rooms/{room} shows it: who, what
// it publishes, and what the room knows of its state. Media is its
// PeerConnection, for the caller to read connection figures from.
type Member struct {
	ParticipantInfo
	// Reconnecting: the connection was lost and the student is kept for
	// the resume window.
	Reconnecting bool
	// Stalled: the media watchdog holds one of its cameras stalled.
	Stalled bool
	// Admitted: it has published every source its token requires.
	Admitted bool
	Media    Media
}

// Snapshot returns the participants of room on this node, by identity
// and device; ErrNoRoom when the room is not open here.
func (r *Rooms) Snapshot(name string) (Summary, []Member, error) {
	r.mu.Lock()
	rm := r.rooms[name]
	r.mu.Unlock()
	if rm == nil {
		return Summary{}, nil, ErrNoRoom
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	sum := Summary{Room: name, Started: rm.started}
	out := make([]Member, 0, len(rm.participants))
	for _, p := range rm.participants {
		switch p.Role {
		case RoleStudent:
			sum.Students++
		case RoleProctor:
			sum.Proctors++
		}
		out = append(out, Member{ParticipantInfo: p.infoLocked(true), Reconnecting: p.resume != nil,
			Stalled: p.stalled, Admitted: p.admitted || len(p.Require) == 0, Media: p.Media})
	}
	slices.SortFunc(out, func(a, b Member) int {
		return strings.Compare(a.Identity+"\x00"+a.Device, b.Identity+"\x00"+b.Device)
	})
	return sum, out, nil
}

// setStalled records what the media watchdog says of p's camera.
func (rm *Room) setStalled(p *Participant, stalled bool) {
	rm.mu.Lock()
	p.stalled = stalled
	rm.mu.Unlock()
}

// End ends room for everyone, as of at: each participant leaves with
// ReasonRoomEnded (and is told so), the trail records admin_action (by
// admin) and room_closed (ended_by_admin), and from now on a token
// issued at or before at's second cannot join the room on this node. A
// later token opens the room afresh (a room name may be reused). It
// returns how many sessions it ended; a room not open here ends none,
// and its mark is still set.
func (r *Rooms) End(name string, at time.Time, admin string) int {
	r.mu.Lock()
	r.ended.add(name, at)
	rm := r.rooms[name]
	if rm == nil {
		r.mu.Unlock()
		return 0
	}
	delete(r.rooms, name)
	rm.mu.Lock()
	if rm.emptyTimer != nil {
		rm.emptyTimer.Stop()
		rm.emptyTimer = nil
	}
	var gone []removal
	var ps []*Participant
	for _, p := range rm.participants {
		if p.resume != nil {
			p.resume.Stop()
		}
		gone = append(gone, rm.removeLocked(p, ReasonRoomEnded))
		ps = append(ps, p)
		r.total--
	}
	rm.mu.Unlock()
	r.mu.Unlock()

	r.record(name, EventAdminAction, admin, "", map[string]any{"action": ActionEndRoom, "ended": len(ps)})
	for i, g := range gone {
		g.announce(rm)
		g.record(r, name)
		p := ps[i]
		r.record(name, EventLeave, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"reason": ReasonRoomEnded, "sid": p.SID}))
	}
	r.record(name, EventRoomClosed, admin, "", map[string]any{"reason": "ended_by_admin", "participants": len(ps)})
	r.log.Info("room ended by admin", "room", name, "admin", admin, "sessions", len(ps))
	for _, p := range ps {
		p.Notify.Evict(ReasonRoomEnded)
	}
	return len(ps)
}

// EndStudent ends every session (each device) of the student with
// identity in room, as a proctor's end does: an admin_action and an
// ended event, the student told why, then evicted. It returns how many
// sessions it ended; ErrNoRoom or ErrNoStudent when there is none.
func (r *Rooms) EndStudent(name, identity, admin, reason string) (int, error) {
	rm := r.room(name)
	if rm == nil {
		return 0, ErrNoRoom
	}
	devices := rm.Students(identity)
	if len(devices) == 0 {
		return 0, ErrNoStudent
	}
	r.record(name, EventAdminAction, admin, identity, map[string]any{"action": ActionEndParticipant, "reason": reason, "sessions": len(devices)})
	r.record(name, EventEnded, admin, identity, map[string]any{"reason": reason, "by": "admin"})
	for _, p := range devices {
		p.Notify.Intervene(SessionEnd{From: "exam administrator", Reason: reason})
		p.Notify.Evict(ReasonEndedByAdmin)
	}
	return len(devices), nil
}

// Message sends text to the student with identity in room, or to every
// student when identity is "": one admin_action event, then a message
// event per student (whose seq the student acknowledges), shown as a
// proctor's message is. from is the sender's display name. It returns
// the identities reached; ErrNoRoom, or ErrNoStudent for an identity not
// in the room.
func (r *Rooms) Message(name, identity, text, admin, from string) ([]string, error) {
	rm := r.room(name)
	if rm == nil {
		return nil, ErrNoRoom
	}
	var to []*Participant
	rm.mu.Lock()
	if identity != "" {
		if p := rm.studentLocked(identity); p != nil {
			to = append(to, p)
		}
	} else {
		for _, p := range rm.participants {
			if p.Role == RoleStudent && p.Device == "" {
				to = append(to, p)
			}
		}
	}
	rm.mu.Unlock()
	if identity != "" && len(to) == 0 {
		return nil, ErrNoStudent
	}
	slices.SortFunc(to, func(a, b *Participant) int { return strings.Compare(a.Identity, b.Identity) })
	reached := make([]string, 0, len(to))
	for _, p := range to {
		reached = append(reached, p.Identity)
	}
	r.record(name, EventAdminAction, admin, identity, map[string]any{"action": ActionMessage, "text": text, "to": reached})
	for _, p := range to {
		seq := r.record(name, EventMessage, admin, p.Identity, map[string]any{"text": text, "by": "admin"})
		p.Notify.Intervene(ProctorMessage{ID: seq, From: from, Text: text})
	}
	return reached, nil
}

// Revoke cuts off every session of identity in room (every room when
// room is "*"): each gets a revoked event naming admin and leaves with
// ReasonRevoked. When record is set (the node that took the API call;
// the others learn of a revocation from the store and only cut off),
// the trail also gets an admin_action: room's, or with "*" each room
// the identity was in. It returns the rooms the identity was in.
func (r *Rooms) Revoke(room, identity, admin string, until time.Time, record bool) []string {
	type session struct {
		p    *Participant
		lost bool // waiting for a resume that must not come
	}
	hits := map[string][]session{}
	rms := map[string]*Room{}
	r.mu.Lock()
	for name, rm := range r.rooms {
		if room != "*" && name != room {
			continue
		}
		rm.mu.Lock()
		for _, p := range rm.participants {
			if p.Identity == identity {
				hits[name] = append(hits[name], session{p, p.resume != nil})
				rms[name] = rm
			}
		}
		rm.mu.Unlock()
	}
	r.mu.Unlock()
	names := make([]string, 0, len(hits))
	for name := range hits {
		names = append(names, name)
	}
	slices.Sort(names)
	untilText := until.UTC().Format(time.RFC3339)
	if record && room != "*" && len(hits) == 0 {
		r.record(room, EventAdminAction, admin, identity, map[string]any{"action": ActionRevoke, "room": room, "until": untilText, "sessions": 0})
	}
	for _, name := range names {
		if record {
			r.record(name, EventAdminAction, admin, identity, map[string]any{"action": ActionRevoke, "room": room, "until": untilText, "sessions": len(hits[name])})
		}
		for _, s := range hits[name] {
			r.record(name, EventRevoked, admin, identity, withDevice(s.p.Device, map[string]any{"sid": s.p.SID, "until": untilText}))
			if s.lost {
				rms[name].Leave(s.p, ReasonRevoked)
				continue
			}
			s.p.Notify.Evict(ReasonRevoked)
		}
	}
	return names
}

// room returns the named open room, nil if none.
func (r *Rooms) room(name string) *Room {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rooms[name]
}
