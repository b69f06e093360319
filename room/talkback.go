package room

import (
	"errors"

	"github.com/invigil/invigil/sfu"
)

// Talk-back: a proctor speaks to one student with their microphone. The
// proctor publishes one audio track labelled SourceTalkback; nobody is
// subscribed to it (Role.Sees gives a proctor no watchers) except the one
// student the proctor talks to now. So no other student can receive it,
// whatever its page does: the server never gives their PeerConnections a
// down-track of it.

// SourceTalkback labels a proctor's microphone track.
const SourceTalkback = "talkback"

// Talk-back events.
const (
	EventTalkbackStarted = "talkback_started"
	EventTalkbackStopped = "talkback_stopped"
)

// Reasons a talk-back stops, in talkback_stopped's details.
const (
	talkStopped     = "stopped"      // the proctor stopped, or turned to another student
	talkStudentLeft = "student_left" // the student's session ended
	talkProctorLeft = "proctor_left" // the proctor's session ended
)

// TalkTo makes proctor w's microphone reach the student with identity,
// and only them; "" stops talking. Turning to another student stops the
// first. Each start and stop is an audit event, and the student is told
// (a TalkbackChange) so its page can play the audio and
// say who speaks. The caller checks that w is a proctor.
func (rm *Room) TalkTo(w *Participant, identity string) error {
	rm.mu.Lock()
	if rm.participants[w.SID] != w {
		rm.mu.Unlock()
		return ErrNotInRoom
	}
	var to *Participant
	if identity != "" {
		if to = rm.studentLocked(identity); to == nil {
			rm.mu.Unlock()
			return ErrNoStudent
		}
	}
	prev := w.talkTo
	if prev == to {
		rm.mu.Unlock()
		return nil
	}
	w.talkTo = to
	mics := talkbackTracks(w.tracks)
	rm.mu.Unlock()

	if prev != nil {
		rm.stopTalk(w, prev, mics, talkStopped)
	}
	if to != nil {
		rm.startTalk(w, to, mics)
	}
	return nil
}

// startTalk subscribes student to proctor w's talk-back tracks, tells
// the student, and records the start.
func (rm *Room) startTalk(w, student *Participant, mics []Track) {
	for _, t := range mics {
		if err := student.Media.Subscribe(t, sfu.QualityLow); err != nil {
			student.Log.Warn("talk-back subscribe failed", "track", t.ID(), "err", err)
		}
	}
	student.Notify.Intervene(talkChange(w, true))
	w.Log.Info("talk-back started", "student", student.Identity)
	rm.Record(EventTalkbackStarted, w.Identity, student.Identity, map[string]any{"sid": w.SID})
}

// stopTalk is startTalk undone; reason says why it stopped.
func (rm *Room) stopTalk(w, student *Participant, mics []Track, reason string) {
	for _, t := range mics {
		if err := student.Media.Unsubscribe(t); err != nil && !errors.Is(err, sfu.ErrNotSubscribed) {
			student.Log.Debug("talk-back unsubscribe", "track", t.ID(), "err", err)
		}
	}
	if reason != talkStudentLeft {
		student.Notify.Intervene(talkChange(w, false))
	}
	w.Log.Info("talk-back stopped", "student", student.Identity, "reason", reason)
	rm.Record(EventTalkbackStopped, w.Identity, student.Identity, map[string]any{"sid": w.SID, "reason": reason})
}

// talkChange is what the student is told: who speaks, and the stream id
// their audio arrives with.
func talkChange(w *Participant, talking bool) TalkbackChange {
	return TalkbackChange{Talking: talking, From: w.Name, StreamID: w.SID}
}

// isTalkback reports whether t is a proctor's talk-back microphone.
func isTalkback(t Track) bool {
	return t.Kind() == sfu.KindAudio && t.Source() == SourceTalkback
}

// talkbackTracks picks a proctor's talk-back tracks out of its tracks.
func talkbackTracks(tracks []Track) []Track {
	var out []Track
	for _, t := range tracks {
		if isTalkback(t) {
			out = append(out, t)
		}
	}
	return out
}

// studentLocked finds the student with identity, its main device first;
// the caller holds mu.
func (rm *Room) studentLocked(identity string) *Participant {
	var other *Participant
	for _, p := range rm.participants {
		if p.Role == RoleStudent && p.Identity == identity {
			if p.Device == "" {
				return p
			}
			other = p
		}
	}
	return other
}

// talk is a talk-back cut short by a participant leaving.
type talk struct {
	proctor, student *Participant
	mics             []Track
	reason           string
}

// talksEndingLocked lists, and forgets, the talk-backs p takes part in,
// as p is removed. The caller holds mu.
func (rm *Room) talksEndingLocked(p *Participant) []talk {
	var out []talk
	if p.talkTo != nil {
		out = append(out, talk{proctor: p, student: p.talkTo, mics: talkbackTracks(p.tracks), reason: talkProctorLeft})
		p.talkTo = nil
	}
	if p.Role == RoleStudent {
		for _, w := range rm.participants {
			if w.talkTo == p {
				out = append(out, talk{proctor: w, student: p, mics: talkbackTracks(w.tracks), reason: talkStudentLeft})
				w.talkTo = nil
			}
		}
	}
	return out
}

// endTalks stops each talk-back; called after the room's mu is released.
func endTalks(rm *Room, talks []talk) {
	for _, tk := range talks {
		rm.stopTalk(tk.proctor, tk.student, tk.mics, tk.reason)
	}
}

// keepTalking moves the talk-backs to old, a student session being
// replaced by its reconnection p, over to p: the proctor goes on talking
// to the same student, with no stop and start in the trail. The caller
// holds the room's mu; it subscribes p and tells it after unlocking.
func keepTalking(talks []talk, old, p *Participant) (ending, resumed []talk) {
	for _, tk := range talks {
		if tk.student == old && tk.reason == talkStudentLeft && old.Device == p.Device {
			tk.proctor.talkTo = p
			tk.student = p
			resumed = append(resumed, tk)
			continue
		}
		ending = append(ending, tk)
	}
	return ending, resumed
}
