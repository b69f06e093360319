package room

import (
	"context"
	"time"
)

// Event kinds (docs/protocol.md, "Audit events over HTTP").
const (
	EventJoin             = "join"
	EventLeave            = "leave"
	EventTrackPublished   = "track_published"
	EventTrackUnpublished = "track_unpublished"
	EventForbidden        = "forbidden"
	EventRoomClosed       = "room_closed"
	EventMessage          = "message"
	EventMessageAck       = "message_ack"
	EventFlag             = "flag"
	EventNote             = "note"
	EventEnded            = "ended"
	EventViolation        = "violation"
	EventDisconnect       = "disconnect"
	EventReconnect        = "reconnect"
	EventAdmitted         = "admitted"
	// EventAdminAction is an API call that changed the room (end, end a
	// participant, message, revoke, lift); its actor is the admin token's
	// subject.
	EventAdminAction = "admin_action"
	// EventRevoked is a session cut off because its identity was revoked.
	EventRevoked = "revoked"
	// The recorder's (package record): recording_started,
	// recording_stopped, recording_gap, recording_deleted.
)

// Event is one entry of a room's audit trail. Seq is per room, gap-free
// and increasing; the store assigns it.
type Event struct {
	Seq     int64          `json:"seq"`
	Time    time.Time      `json:"time"`
	Node    string         `json:"node,omitempty"`
	Kind    string         `json:"kind"`
	Actor   string         `json:"actor,omitempty"`
	Subject string         `json:"subject,omitempty"`
	Details map[string]any `json:"details"`
}

// EventSink is where a room's audit events go (package audit's stores).
// Append returns once the event is durable (for a file store: written
// and fsynced), with the Seq the sink gave it.
type EventSink interface {
	Append(ctx context.Context, room string, e Event) (Event, error)
}

// recordTimeout bounds how long recording an event may hold up the
// session that caused it; a store slower than this loses the event, and
// says so in the log.
const recordTimeout = 5 * time.Second

// Record appends an event to the room's trail. Failures are logged, not
// returned: an audit store in trouble must not stop an exam.
func (rm *Room) Record(kind, actor, subject string, details map[string]any) {
	rm.rooms.record(rm.name, kind, actor, subject, details)
}

// Record appends an event to room's trail for a component outside the
// room (the recorder) and returns its sequence number, 0 if it was not
// recorded. Like Room.Record it logs failures instead of returning them.
func (r *Rooms) Record(room, kind, actor, subject string, details map[string]any) int64 {
	return r.record(room, kind, actor, subject, details)
}

func (r *Rooms) record(room, kind, actor, subject string, details map[string]any) int64 {
	if r.cfg.Events == nil {
		return 0
	}
	if details == nil {
		details = map[string]any{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	e := Event{Time: time.Now().UTC(), Node: r.cfg.NodeID, Kind: kind, Actor: actor, Subject: subject, Details: details}
	e, err := r.cfg.Events.Append(ctx, room, e)
	if err != nil {
		r.log.Error("audit event not recorded", "room", room, "kind", kind, "err", err)
		return 0
	}
	// Proctors see the trail as it is written.
	r.mu.Lock()
	var proctors []*Participant
	if rm := r.rooms[room]; rm != nil {
		rm.mu.Lock()
		for _, p := range rm.participants {
			if p.Role == RoleProctor {
				proctors = append(proctors, p)
			}
		}
		rm.mu.Unlock()
	}
	r.mu.Unlock()
	for _, p := range proctors {
		p.Notify.Event(e)
	}
	return e.Seq
}
