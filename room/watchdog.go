package room

import (
	"context"
	"time"

	"github.com/invigil/invigil/sfu"
)

// Media watchdog events.
const (
	EventMediaStalled = "media_stalled"
	EventMediaResumed = "media_resumed"
)

// DefaultStallAfter is how long a connected student's camera may send
// nothing before the proctor is told (serve --stall-after).
const DefaultStallAfter = 3 * time.Second

// Bitrate collapse: a camera that still sends packets but, over a whole
// stall-after window, fewer bits than CollapseBitrate shows nothing a
// proctor can use (a covered or frozen camera, an uplink starved to
// nothing). Chrome's congestion control keeps video at ≥ ~30 kb/s while it
// can, and the lowest simulcast layer is ~150 kb/s, so 20 kb/s is well below
// any picture. It counts as resumed above twice that, so a camera hovering
// at the threshold does not flap.
const (
	CollapseBitrate = 20_000 // bits per second, all layers together
	resumeBitrate   = 2 * CollapseBitrate
)

// Watch is the media watchdog: it records media_stalled when a connected
// student's camera has sent no packet for stallAfter (cause silence), or
// sent under CollapseBitrate through a whole stallAfter window after
// having sent a picture (cause bitrate), and media_resumed (with how long
// it lasted) when packets, or the bitrate, come back. Proctors see both
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
		t  Track
	}
	silentSince := map[Track]time.Time{} // stalled tracks: their last packet before the silence
	rates := map[Track]*rateWatch{}      // every camera's bitrate over the last window
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
					if t.Kind() == sfu.KindVideo && t.Source() == "camera" {
						cams = append(cams, camera{rm, p, t})
					}
				}
			}
			rm.mu.Unlock()
		}
		r.mu.Unlock()

		now := time.Now()
		live := make(map[Track]bool, len(cams))
		for _, c := range cams {
			live[c.t] = true
			last := c.t.LastPacket()
			if last.IsZero() {
				continue // not started yet: that is the join's business
			}
			since, stalled := silentSince[c.t]
			if !stalled {
				r.watchBitrate(c.rm, c.p, c.t, rates, now, stallAfter)
			}
			switch {
			case !stalled && now.Sub(last) >= stallAfter:
				silentSince[c.t] = last
				c.rm.setStalled(c.p, true)
				delete(rates, c.t) // the bitrate starts afresh when packets come back
				c.p.Log.Info("camera stalled", "track", c.t.ID(), "silent", now.Sub(last).Round(time.Millisecond))
				c.rm.Record(EventMediaStalled, "", c.p.Identity, map[string]any{
					"track_id": c.t.ID(), "source": c.t.Source(), "cause": "silence", "since": last.UTC(), "silent_ms": now.Sub(last).Milliseconds()})
			case stalled && last.After(since):
				delete(silentSince, c.t)
				c.rm.setStalled(c.p, false)
				c.p.Log.Info("camera resumed", "track", c.t.ID(), "silent", last.Sub(since).Round(time.Millisecond))
				c.rm.Record(EventMediaResumed, "", c.p.Identity, map[string]any{
					"track_id": c.t.ID(), "source": c.t.Source(), "cause": "silence", "stalled_ms": last.Sub(since).Milliseconds()})
			}
		}
		for t := range silentSince {
			if !live[t] {
				delete(silentSince, t) // unpublished or left: those have their own events
			}
		}
		for t := range rates {
			if !live[t] {
				delete(rates, t)
			}
		}
	}
}

// rateWatch follows one camera's bitrate, window by window.
type rateWatch struct {
	from      time.Time // the window's start
	bytes     uint64    // BytesReceived at from
	healthy   bool      // a window at or above resumeBitrate was seen
	collapsed time.Time // when the collapse was recorded; zero if not collapsed
}

// watchBitrate closes the camera's window once it spans stallAfter and
// records media_stalled (cause bitrate) when the camera, healthy before,
// sent under CollapseBitrate through it; media_resumed once it is back
// at resumeBitrate.
func (r *Rooms) watchBitrate(rm *Room, p *Participant, t Track, rates map[Track]*rateWatch, now time.Time, window time.Duration) {
	w := rates[t]
	if w == nil {
		rates[t] = &rateWatch{from: now, bytes: t.BytesReceived()}
		return
	}
	span := now.Sub(w.from)
	if span < window {
		return
	}
	b := t.BytesReceived()
	bps := float64(b-w.bytes) * 8 / span.Seconds()
	w.from, w.bytes = now, b
	switch {
	case w.collapsed.IsZero() && w.healthy && bps < CollapseBitrate && now.Sub(t.LastPacket()) < window/2:
		// Packets still come (silence is the other detector's), too few bits.
		w.collapsed = now
		rm.setStalled(p, true)
		p.Log.Info("camera bitrate collapsed", "track", t.ID(), "bps", int(bps))
		rm.Record(EventMediaStalled, "", p.Identity, withDevice(p.Device, map[string]any{
			"track_id": t.ID(), "source": t.Source(), "cause": "bitrate", "bitrate_bps": int(bps), "threshold_bps": CollapseBitrate}))
	case !w.collapsed.IsZero() && bps >= resumeBitrate:
		p.Log.Info("camera bitrate recovered", "track", t.ID(), "bps", int(bps))
		rm.Record(EventMediaResumed, "", p.Identity, withDevice(p.Device, map[string]any{
			"track_id": t.ID(), "source": t.Source(), "cause": "bitrate", "bitrate_bps": int(bps), "stalled_ms": now.Sub(w.collapsed).Milliseconds()}))
		w.collapsed = time.Time{}
		rm.setStalled(p, false)
	}
	if bps >= resumeBitrate {
		w.healthy = true
	}
}
