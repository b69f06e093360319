package roomapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/invigil/invigil/room"
)

// RefreshInterval is how often a node reads the revocations from its
// store: a revocation made through another node cuts off this node's
// sessions of the identity, and refuses its TURN allocations here,
// within it.
const RefreshInterval = 2 * time.Second

// Lockouts is what a node refuses on the exam platform's word: joins
// with a token older than its room's end, and revoked identities (at
// join, and on the embedded TURN server). Joins ask the store (one
// round trip); TURN, which asks per request, reads a copy of the
// revocations that Run refreshes.
type Lockouts struct {
	store Store
	rooms *room.Rooms
	log   *slog.Logger

	// mu guards cached: the revocations in force, as last read.
	mu     sync.Mutex
	cached []Revocation
}

// NewLockouts returns the lockouts of store, cutting off sessions of
// rooms. It reads the revocations once, so TURN refuses from the start.
func NewLockouts(ctx context.Context, store Store, rooms *room.Rooms, log *slog.Logger) *Lockouts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lockouts{store: store, rooms: rooms, log: log}
	l.refresh(ctx)
	return l
}

// Admit implements signaling's Gate. When the store cannot answer, the
// copy of the revocations decides and an ended room's marker is not
// checked (this node's own memory of the rooms it ended still is): an
// outage of the cluster store must not stop an exam's joins.
func (l *Lockouts) Admit(ctx context.Context, roomName, identity string, issued time.Time) error {
	ended, err := l.store.Ended(ctx, roomName)
	if err != nil {
		l.log.Warn("join admitted without its room's end marker: the store did not answer", "room", roomName, "err", err)
	} else if !ended.IsZero() && issued.Unix() <= ended.Unix() {
		return fmt.Errorf("%w at %s", room.ErrRoomEnded, ended.Format(time.RFC3339))
	}
	r, revoked, err := l.store.Revoked(ctx, roomName, identity)
	if err != nil {
		l.log.Warn("join checked against the last revocations read: the store did not answer", "room", roomName, "err", err)
		r, revoked = l.cachedFor(roomName, identity)
	}
	if revoked {
		return fmt.Errorf("%w until %s", room.ErrRevoked, r.Until.Format(time.RFC3339))
	}
	return nil
}

// Denied is the TURN server's Deny: identity is revoked for some room.
// TURN credentials name no room, so a revocation for one room refuses
// the identity's relays on this node while it lasts.
func (l *Lockouts) Denied(identity string) bool {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.cached {
		if r.Identity == identity && now.Before(r.Until) {
			return true
		}
	}
	return false
}

func (l *Lockouts) cachedFor(roomName, identity string) (Revocation, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.cached {
		if r.covers(roomName, identity, now) {
			return r, true
		}
	}
	return Revocation{}, false
}

// Run refreshes the copy every RefreshInterval until ctx ends, and cuts
// off any session of this node a revocation covers (one made through
// another node, or a join that raced the revocation).
func (l *Lockouts) Run(ctx context.Context) {
	t := time.NewTicker(RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range l.refresh(ctx) {
			l.rooms.Revoke(r.Room, r.Identity, r.By, r.Until, false)
		}
	}
}

// refresh reads the revocations and returns them; on a store error it
// keeps the copy it had.
func (l *Lockouts) refresh(ctx context.Context) []Revocation {
	rs, err := l.store.Revocations(ctx)
	if err != nil {
		l.log.Debug("revocations not refreshed", "err", err)
		return nil
	}
	l.mu.Lock()
	l.cached = rs
	l.mu.Unlock()
	return rs
}

// remember puts r in the copy at once (the node that took the call).
func (l *Lockouts) remember(r Revocation) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Revocation, 0, len(l.cached)+1) // a new slice, as in forget
	for _, o := range l.cached {
		if o.Identity != r.Identity || o.Room != r.Room {
			out = append(out, o)
		}
	}
	l.cached = append(out, r)
}

// forget takes identity's revocation for room out of the copy.
func (l *Lockouts) forget(identity, roomName string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Revocation, 0, len(l.cached)) // a new slice: refresh's callers may hold the old
	for _, o := range l.cached {
		if o.Identity != identity || o.Room != roomName {
			out = append(out, o)
		}
	}
	l.cached = out
}
