package room

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/invigil/invigil/sfu"
)

// Room is one exam room on this node.
type Room struct {
	name    string
	rooms   *Rooms
	started time.Time // when its first participant joined

	// mu guards participants, each participant's tracks, and emptyTimer.
	// Announcements and subscriptions are made after it is released.
	mu           sync.Mutex
	participants map[string]*Participant // by SID
	emptyTimer   *time.Timer
}

// Name is the room's name, the token's room claim.
func (rm *Room) Name() string { return rm.name }

// Leave removes p from the room and tells those who saw it.
func (rm *Room) Leave(p *Participant, reason string) { rm.rooms.leave(rm, p, reason) }

// Publish records that p sends t and subscribes everyone allowed to see
// p. Only roles that may publish get here; signaling checks first.
func (rm *Room) Publish(p *Participant, t Track) error {
	rm.mu.Lock()
	if rm.participants[p.SID] != p {
		rm.mu.Unlock()
		return ErrNotInRoom
	}
	p.tracks = append(p.tracks, t)
	p.published = true
	admitted := p.admitLocked()
	info := p.infoLocked(false)
	watchers := rm.watchersLocked(p)
	qualities := make([]int, len(watchers))
	for i, w := range watchers {
		qualities[i] = w.trackQualityLocked(p, t)
	}
	talkTo := p.talkTo // a proctor's microphone reaches the student it talks to
	rm.mu.Unlock()

	if talkTo != nil && isTalkback(t) {
		if err := talkTo.Media.Subscribe(t, sfu.QualityLow); err != nil {
			talkTo.Log.Warn("talk-back subscribe failed", "track", t.ID(), "err", err)
		}
	}

	ti := trackInfo(t)
	rm.rooms.record(rm.name, EventTrackPublished, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"track_id": ti.TrackID, "kind": ti.Kind, "source": ti.Source}))
	if admitted {
		rm.rooms.record(rm.name, EventAdmitted, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"required": p.Require, "sid": p.SID}))
	}
	if p.Role == RoleStudent {
		for _, h := range rm.rooms.publishHooks() {
			h(rm.name, p, t)
		}
	}
	for i, w := range watchers {
		if err := w.Media.Subscribe(t, qualities[i]); err != nil {
			w.Log.Warn("subscribe failed", "track", t.ID(), "err", err)
			continue
		}
		w.Notify.TrackPublished(info, ti)
	}
	// A proctor may have changed its view between the qualities being
	// computed and the subscriptions existing; its SetQuality found no
	// subscription then. Settle on the view as it is now.
	rm.mu.Lock()
	for i, w := range watchers {
		qualities[i] = -2 // unchanged marker, below every quality
		if rm.participants[w.SID] == w {
			qualities[i] = w.trackQualityLocked(p, t)
		}
	}
	rm.mu.Unlock()
	for i, w := range watchers {
		if qualities[i] >= sfu.QualityOff {
			if err := w.Media.SetQuality(t.ID(), qualities[i]); err != nil && !errors.Is(err, sfu.ErrNotSubscribed) {
				w.Log.Warn("set quality failed", "track", t.ID(), "err", err)
			}
		}
	}
	return nil
}

// Unpublish forgets t and unsubscribes everyone who received it. A track
// of a participant who already left was unpublished by Leave.
func (rm *Room) Unpublish(p *Participant, t Track) {
	rm.mu.Lock()
	i := slices.Index(p.tracks, t)
	if rm.participants[p.SID] != p || i < 0 {
		rm.mu.Unlock()
		return
	}
	p.tracks = slices.Delete(p.tracks, i, i+1)
	info := p.infoLocked(false)
	watchers := rm.watchersLocked(p)
	talkTo := p.talkTo
	rm.mu.Unlock()
	unpublish(watchers, info, t)
	if talkTo != nil {
		if err := talkTo.Media.Unsubscribe(t); err != nil && !errors.Is(err, sfu.ErrNotSubscribed) {
			talkTo.Log.Debug("talk-back unsubscribe", "track", t.ID(), "err", err)
		}
	}
	rm.rooms.record(rm.name, EventTrackUnpublished, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"track_id": t.ID(), "kind": t.Kind().String(),
		"source": t.Source(), "required": slices.Contains(p.Require, t.Source())}))
}

// admitLocked marks p admitted, and reports true, the first time every
// source it must publish is among its tracks. The caller holds mu.
func (p *Participant) admitLocked() bool {
	if p.admitted || len(p.Require) == 0 {
		return false
	}
	for _, src := range p.Require {
		if !slices.ContainsFunc(p.tracks, func(t Track) bool { return t.Source() == src }) {
			return false
		}
	}
	p.admitted = true
	return true
}

func unpublish(watchers []*Participant, info ParticipantInfo, t Track) {
	ti := trackInfo(t)
	for _, w := range watchers {
		if err := w.Media.Unsubscribe(t); err != nil && !errors.Is(err, sfu.ErrNotSubscribed) {
			w.Log.Warn("unsubscribe failed", "track", t.ID(), "err", err)
		}
		w.Notify.TrackUnpublished(info, ti)
	}
}

// watchersLocked lists the participants allowed to see p.
func (rm *Room) watchersLocked(p *Participant) []*Participant {
	var out []*Participant
	for _, w := range rm.participants {
		if w != p && w.Role.Sees(p.Role) {
			out = append(out, w)
		}
	}
	return out
}

// admitLocked computes, for a participant just added, what it may see
// (view), the tracks it must receive, and who must be told it came.
func (rm *Room) admitLocked(p *Participant) (view []ParticipantInfo, tracks []subscription, watchers []*Participant) {
	view = []ParticipantInfo{}
	for _, o := range rm.participants {
		if o == p {
			continue
		}
		if p.Role.Sees(o.Role) {
			view = append(view, o.infoLocked(true))
			for _, t := range o.tracks {
				tracks = append(tracks, subscription{track: t, quality: p.trackQualityLocked(o, t)})
			}
		}
		if o.Role.Sees(p.Role) {
			watchers = append(watchers, o)
		}
	}
	slices.SortFunc(view, func(a, b ParticipantInfo) int { return strings.Compare(a.Identity, b.Identity) })
	return view, tracks, watchers
}

// subscription is a track to subscribe to at a quality.
type subscription struct {
	track   Track
	quality int
}

// SetFocus makes proctor w watch student identity at the high layer ("":
// back to the grid). Only proctors may; the caller checks.
func (rm *Room) SetFocus(w *Participant, identity string) error {
	return rm.relayout(w, func() { w.focus = identity })
}

// SetView tells the room which student tiles proctor w shows and how
// large: only their video is forwarded (audio always is). A nil tiles
// means every tile is visible.
func (rm *Room) SetView(w *Participant, tiles []Tile) error {
	return rm.relayout(w, func() {
		if tiles == nil {
			w.tiles = nil
			return
		}
		w.tiles = make(map[string]int, len(tiles))
		for _, t := range tiles {
			q := sfu.QualityLow
			if t.Height >= HighTileHeight {
				q = sfu.QualityHigh
			}
			w.tiles[t.Identity] = q
		}
	})
}

// relayout applies change to w's view and moves each student's video to
// the quality the new view gives it.
func (rm *Room) relayout(w *Participant, change func()) error {
	rm.mu.Lock()
	if rm.participants[w.SID] != w {
		rm.mu.Unlock()
		return ErrNotInRoom
	}
	change()
	var subs []subscription
	for _, p := range rm.participants {
		if !w.Role.Sees(p.Role) {
			continue
		}
		q := w.qualityLocked(p)
		for _, t := range p.tracks {
			if t.Kind() == sfu.KindVideo {
				subs = append(subs, subscription{track: t, quality: q})
			}
		}
	}
	rm.mu.Unlock()
	for _, s := range subs {
		if err := w.Media.SetQuality(s.track.ID(), s.quality); err != nil && !errors.Is(err, sfu.ErrNotSubscribed) {
			w.Log.Warn("set quality failed", "track", s.track.ID(), "err", err)
		}
	}
	return nil
}

// removal is what must be announced after a participant was removed.
type removal struct {
	info     ParticipantInfo
	reason   string
	tracks   []Track
	watchers []*Participant
	require  []string // the sources the participant had to publish
	talks    []talk   // talk-backs the participant took part in
}

// removeLocked takes p out of the room; the caller announces the result
// after unlocking.
func (rm *Room) removeLocked(p *Participant, reason string) removal {
	delete(rm.participants, p.SID)
	gone := removal{info: p.infoLocked(false), reason: reason, tracks: p.tracks, watchers: rm.watchersLocked(p), require: p.Require,
		talks: rm.talksEndingLocked(p)}
	p.tracks = nil
	return gone
}

// record writes track_unpublished for each track the participant took
// with it.
func (g removal) record(r *Rooms, room string) {
	for _, t := range g.tracks {
		r.record(room, EventTrackUnpublished, g.info.Identity, g.info.Identity,
			withDevice(g.info.Device, map[string]any{"track_id": t.ID(), "kind": t.Kind().String(), "source": t.Source(), "reason": g.reason,
				"required": slices.Contains(g.require, t.Source())}))
	}
}

func (g removal) announce(rm *Room) {
	for _, t := range g.tracks {
		unpublish(g.watchers, g.info, t)
	}
	for _, w := range g.watchers {
		w.Notify.ParticipantLeft(g.info, g.reason)
	}
	endTalks(rm, g.talks)
}

// withDevice adds a student's additional device to an event's details.
func withDevice(device string, details map[string]any) map[string]any {
	if device != "" {
		details["device"] = device
	}
	return details
}

// sessionLocked finds the participant with identity on device, if any:
// the session a new one of the same identity and device replaces.
func (rm *Room) sessionLocked(identity, device string) *Participant {
	for _, p := range rm.participants {
		if p.Identity == identity && p.Device == device {
			return p
		}
	}
	return nil
}

// Students returns every session of the student with identity: the main
// device and any additional ones.
func (rm *Room) Students(identity string) []*Participant {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	var out []*Participant
	for _, p := range rm.participants {
		if p.Role == RoleStudent && p.Identity == identity {
			out = append(out, p)
		}
	}
	return out
}

// Student returns the student with identity in the room (its main
// device when it has more than one), nil if none.
func (rm *Room) Student(identity string) *Participant {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	return rm.studentLocked(identity)
}
