package signaling

import (
	"time"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// mediaEvent is one entry the media connection's state puts on the trail.
type mediaEvent struct {
	kind    string
	details map[string]any
}

// mediaState puts a participant's lost and regained media path on the
// trail: disconnect when ICE stops hearing the client (Wi-Fi drop, cut
// UDP), reconnect with the gap when it hears it again. The participant
// stays in the room meanwhile, so the proctor's tile is the same one.
// It runs on pion's state callback, a goroutine per change: the entries
// are queued in order under mediaMu, and whichever call finds nobody
// recording records them, the lock released around each store write.
func (s *session) mediaState(st sfu.ConnState) {
	if s.rm == nil {
		return
	}
	s.mediaMu.Lock()
	switch st {
	case sfu.ConnDisconnected:
		if s.mediaDown.IsZero() {
			s.mediaDown = time.Now()
			s.mediaTrail = append(s.mediaTrail, mediaEvent{room.EventDisconnect, map[string]any{"cause": "media", "sid": s.p.SID}})
		}
	case sfu.ConnConnected:
		if !s.mediaDown.IsZero() {
			gap := time.Since(s.mediaDown)
			s.mediaDown = time.Time{}
			s.mediaTrail = append(s.mediaTrail, mediaEvent{room.EventReconnect, map[string]any{"cause": "media", "sid": s.p.SID, "gap_ms": gap.Milliseconds()}})
		}
	}
	if s.mediaFlushing {
		s.mediaMu.Unlock()
		return // the call recording now records this one too, in order
	}
	s.mediaFlushing = true
	for len(s.mediaTrail) > 0 {
		e := s.mediaTrail[0]
		s.mediaTrail = s.mediaTrail[1:]
		s.mediaMu.Unlock()
		s.rm.Record(e.kind, s.p.Identity, s.p.Identity, e.details)
		s.mediaMu.Lock()
	}
	s.mediaFlushing = false
	s.mediaMu.Unlock()
}
