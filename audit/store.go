package audit

import (
	"context"
	"errors"

	"github.com/invigil/invigil/room"
)

// Store keeps rooms' audit trails: room's event sink, and the reading
// side the events API needs.
type Store interface {
	room.EventSink
	// List returns up to limit events with Seq > after, oldest first.
	List(ctx context.Context, room string, after int64, limit int) ([]room.Event, error)
}

var (
	// ErrClosed is returned by a store that has been closed.
	ErrClosed = errors.New("audit: store closed")
	// ErrUnavailable wraps a failure to reach Redis.
	ErrUnavailable = errors.New("audit: store unavailable")
)
