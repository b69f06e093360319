package room

import (
	"context"
	"time"

	"github.com/invigil/invigil/sfu"
	"github.com/pion/webrtc/v4"
)

// Media watchdog events.
const (
	EventMediaStalled = "media_stalled"
	EventMediaResumed = "media_resumed"
)

// DefaultStallAfter is how long a connected student's camera may send
// nothing before the proctor is told (serve --stall-after).
const DefaultStallAfter = 3 * time.Second

// Watch is the media watchdog: it records media_stalled when a connected
// student's camera has sent no packet for stallAfter, and media_resumed
// (with how long it was silent) when packets come again. Proctors see both
// at once, like every event. It checks four times per stallAfter, reading
// each track's last-packet time (one atomic load: nothing on the
// forwarding path), and returns when ctx ends.
func (r *Rooms) Watch(ctx context.Context, stallAfter time.Duration) {
	if stallAfter <= 0 {
		stallAfter = DefaultStallAfter
	}
	tick := time.NewTicker(max(stallAfter/4, 50*time.Millisecond))
	defer tick.Stop()
	type camera struct {
		rm *Room
		p  *Participant
		t  *sfu.Track
	}
	silentSince := map[*sfu.Track]time.Time{} // stalled tracks: their last packet before the silence
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var cams []camera
		r.mu.Lock()
		for _, rm := range r.rooms {
			rm.mu.Lock()
			for _, p := range rm.participants {
				if p.Role != RoleStudent {
					continue
				}
				for _, t := range p.tracks {
					if t.Kind() == webrtc.RTPCodecTypeVideo && t.Source() == "camera" {
						cams = append(cams, camera{rm, p, t})
					}
				}
			}
			rm.mu.Unlock()
		}
		r.mu.Unlock()

		now := time.Now()
		live := make(map[*sfu.Track]bool, len(cams))
		for _, c := range cams {
			live[c.t] = true
			last := c.t.LastPacket()
			if last.IsZero() {
				continue // not started yet: that is the join's business
			}
			since, stalled := silentSince[c.t]
			switch {
			case !stalled && now.Sub(last) >= stallAfter:
				silentSince[c.t] = last
				c.p.Log.Info("camera stalled", "track", c.t.ID(), "silent", now.Sub(last).Round(time.Millisecond))
				c.rm.Record(EventMediaStalled, "", c.p.Identity, map[string]any{
					"track_id": c.t.ID(), "source": c.t.Source(), "since": last.UTC(), "silent_ms": now.Sub(last).Milliseconds()})
			case stalled && last.After(since):
				delete(silentSince, c.t)
				c.p.Log.Info("camera resumed", "track", c.t.ID(), "silent", last.Sub(since).Round(time.Millisecond))
				c.rm.Record(EventMediaResumed, "", c.p.Identity, map[string]any{
					"track_id": c.t.ID(), "source": c.t.Source(), "stalled_ms": last.Sub(since).Milliseconds()})
			}
		}
		for t := range silentSince {
			if !live[t] {
				delete(silentSince, t) // unpublished or left: those have their own events
			}
		}
	}
}
