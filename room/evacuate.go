package room

// Evacuate empties this node for a drain's deadline: every room is
// closed here (room_closed, reason "drained") and each participant
// leaves with reason, the registry staying open (an undrain takes new
// rooms again). gone is called with the rooms' names once they are out
// of the registry and before anyone is told, so the caller can give up
// their placement (a client told to go rejoins through placement at
// once). Unlike End, it leaves no mark: the same tokens join the room on
// whichever node holds it next. It returns how many sessions it ended.
func (r *Rooms) Evacuate(reason string, gone func(rooms []string)) int {
	type left struct {
		rm      *Room
		removed []removal
		ps      []*Participant
	}
	r.mu.Lock()
	var all []left
	names := make([]string, 0, len(r.rooms))
	for name, rm := range r.rooms {
		delete(r.rooms, name)
		names = append(names, name)
		l := left{rm: rm}
		rm.mu.Lock()
		if rm.emptyTimer != nil {
			rm.emptyTimer.Stop()
			rm.emptyTimer = nil
		}
		for _, p := range rm.participants {
			if p.resume != nil {
				p.resume.Stop()
			}
			l.removed = append(l.removed, rm.removeLocked(p, reason))
			l.ps = append(l.ps, p)
			r.total--
		}
		rm.mu.Unlock()
		all = append(all, l)
	}
	r.mu.Unlock()
	if gone != nil && len(names) > 0 {
		gone(names)
	}
	n := 0
	for _, l := range all {
		name := l.rm.name
		for i, g := range l.removed {
			g.announce(l.rm)
			g.record(r, name)
			p := l.ps[i]
			r.record(name, EventLeave, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"reason": reason, "sid": p.SID}))
		}
		r.record(name, EventRoomClosed, "", "", map[string]any{"reason": "drained", "participants": len(l.ps)})
		for _, p := range l.ps {
			p.Notify.Evict(reason)
		}
		n += len(l.ps)
	}
	if n > 0 || len(names) > 0 {
		r.log.Info("node evacuated", "rooms", len(names), "sessions", n, "reason", reason)
	}
	return n
}
