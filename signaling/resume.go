package signaling

import (
	"time"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// mediaState puts a participant's lost and regained media path on the
// trail: disconnect when ICE stops hearing the client (Wi-Fi drop, cut
// UDP), reconnect with the gap when it hears it again. The participant
// stays in the room meanwhile, so the proctor's tile is the same one.
// It runs on pion's state callback.
func (s *session) mediaState(st sfu.ConnState) {
	if s.rm == nil {
		return
	}
	s.mediaMu.Lock()
	defer s.mediaMu.Unlock()
	switch st {
	case sfu.ConnDisconnected:
		if s.mediaDown.IsZero() {
			s.mediaDown = time.Now()
			s.rm.Record(room.EventDisconnect, s.p.Identity, s.p.Identity, map[string]any{"cause": "media", "sid": s.p.SID})
		}
	case sfu.ConnConnected:
		if !s.mediaDown.IsZero() {
			gap := time.Since(s.mediaDown)
			s.mediaDown = time.Time{}
			s.rm.Record(room.EventReconnect, s.p.Identity, s.p.Identity, map[string]any{"cause": "media", "sid": s.p.SID, "gap_ms": gap.Milliseconds()})
		}
	}
}
