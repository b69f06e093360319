package roomapi

import (
	"context"
	"errors"
	"time"
)

// AllRooms is a revocation's room for every room.
const AllRooms = "*"

// MarkTTL is how long a store keeps the second a room was ended. A
// marker refuses tokens issued before it; once every such token has
// expired it refuses nothing, so a store may forget it. A week outlives
// any join token an exam platform should mint (docs/http.md).
const MarkTTL = 7 * 24 * time.Hour

// Revocation locks an identity out of a room, or of every room, until a
// time.
type Revocation struct {
	Identity string `json:"identity"`
	// Room is the room, or AllRooms.
	Room  string    `json:"room"`
	Until time.Time `json:"until"`
	// By is the subject of the admin token that revoked it.
	By      string    `json:"by"`
	Created time.Time `json:"created"`
}

// covers reports whether r locks identity out of room at now.
func (r Revocation) covers(room, identity string, now time.Time) bool {
	return r.Identity == identity && (r.Room == AllRooms || r.Room == room) && now.Before(r.Until)
}

// ErrNoRevocation is returned by Lift when there is nothing to lift.
var ErrNoRevocation = errors.New("roomapi: no such revocation")

// Store keeps what outlives a node's memory: the second each room was
// ended, and the revocations in force. FileStore keeps them under the
// data dir (a node alone), RedisStore in the cluster's Redis, where
// every node reads them.
type Store interface {
	// MarkEnded records that room was ended at at.
	MarkEnded(ctx context.Context, room string, at time.Time) error
	// Ended returns when room was last ended; zero if it never was (or
	// longer ago than MarkTTL).
	Ended(ctx context.Context, room string) (time.Time, error)
	// Revoke stores r, replacing one for the same identity and room.
	Revoke(ctx context.Context, r Revocation) error
	// Lift removes the revocation of identity for room; ErrNoRevocation
	// when there is none.
	Lift(ctx context.Context, identity, room string) error
	// Revocations lists the revocations in force, oldest first.
	Revocations(ctx context.Context) ([]Revocation, error)
	// Revoked returns the revocation in force that locks identity out of
	// room, if any: the room's or the every-room one.
	Revoked(ctx context.Context, room, identity string) (Revocation, bool, error)
}
