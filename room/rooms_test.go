package room

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/invigil/invigil/sfu"
)

// recorder is a participant's client and PeerConnection as the room sees
// them: it records every announcement and subscription it is given.
type recorder struct {
	mu      sync.Mutex
	events  []string
	subs    map[Track]bool
	quality map[string]int // track id → quality
	evicted string
}

func (r *recorder) add(e string) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) Subscribe(t Track, q int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs[t] = true
	r.quality[t.ID()] = q
	return nil
}

func (r *recorder) SetQuality(id string, q int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.quality[id] = q
	return nil
}

func (r *recorder) Unsubscribe(t Track) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.subs[t] {
		return sfu.ErrNotSubscribed
	}
	delete(r.subs, t)
	return nil
}

func (r *recorder) ParticipantJoined(p ParticipantInfo) { r.add("joined " + p.Identity) }
func (r *recorder) ParticipantLeft(p ParticipantInfo, why string) {
	r.add("left " + p.Identity + " " + why)
}
func (r *recorder) TrackPublished(p ParticipantInfo, _ TrackInfo) { r.add("published " + p.Identity) }
func (r *recorder) TrackUnpublished(p ParticipantInfo, _ TrackInfo) {
	r.add("unpublished " + p.Identity)
}
func (r *recorder) Evict(reason string)    { r.mu.Lock(); r.evicted = reason; r.mu.Unlock() }
func (r *recorder) Intervene(Intervention) {}
func (r *recorder) Event(e Event)          { r.add("event " + e.Kind) }

func (r *recorder) log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newParticipant(identity string, role Role) (*Participant, *recorder) {
	rec := &recorder{subs: map[Track]bool{}, quality: map[string]int{}}
	return &Participant{SID: "PA_" + identity, Identity: identity, Name: identity, Role: role, Media: rec, Notify: rec, Log: quiet}, rec
}

func newRooms(t *testing.T, cfg Config) *Rooms {
	t.Helper()
	cfg.Logger = quiet
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustJoin(t *testing.T, r *Rooms, name string, p *Participant) (*Room, []ParticipantInfo) {
	t.Helper()
	rm, view, err := r.Join(name, p)
	if err != nil {
		t.Fatalf("join %s: %v", p.Identity, err)
	}
	return rm, view
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestPrivacy: proctors see and receive students; students see and
// receive nobody; proctors are invisible to students.
func TestPrivacy(t *testing.T) {
	r := newRooms(t, Config{})
	proctor, pRec := newParticipant("proctor", RoleProctor)
	alice, aRec := newParticipant("alice", RoleStudent)
	bob, bRec := newParticipant("bob", RoleStudent)

	rm, view := mustJoin(t, r, "exam", proctor)
	if len(view) != 0 {
		t.Fatalf("proctor's view of an empty room: %v", view)
	}
	mustJoin(t, r, "exam", alice)
	track := &sfu.Track{}
	if err := rm.Publish(alice, track); err != nil {
		t.Fatal(err)
	}
	_, bobView := mustJoin(t, r, "exam", bob)
	if len(bobView) != 0 {
		t.Errorf("bob's joined lists %v; a student sees nobody", bobView)
	}
	if !pRec.subs[track] {
		t.Error("proctor not subscribed to alice's track")
	}
	if len(bRec.subs) != 0 || len(aRec.subs) != 0 {
		t.Error("a student was subscribed to something")
	}
	if got := aRec.log(); len(got) != 0 {
		t.Errorf("alice was told %v", got)
	}
	if got := bRec.log(); len(got) != 0 {
		t.Errorf("bob was told %v", got)
	}

	// A second proctor sees both students and alice's track at once.
	proctor2, p2Rec := newParticipant("proctor2", RoleProctor)
	_, view2 := mustJoin(t, r, "exam", proctor2)
	if len(view2) != 2 || view2[0].Identity != "alice" || len(view2[0].Tracks) != 1 || view2[1].Identity != "bob" {
		t.Errorf("second proctor's view %+v", view2)
	}
	if !p2Rec.subs[track] {
		t.Error("second proctor not subscribed to alice's existing track")
	}

	rm.Leave(alice, ReasonLeft)
	want := []string{"joined alice", "published alice", "joined bob", "unpublished alice", "left alice left"}
	if got := pRec.log(); !equal(got, want) {
		t.Errorf("proctor was told %v, want %v", got, want)
	}
	if pRec.subs[track] || p2Rec.subs[track] {
		t.Error("a proctor still receives the track of a student who left")
	}
	if got := bRec.log(); len(got) != 0 {
		t.Errorf("bob was told %v", got)
	}
}

func TestCaps(t *testing.T) {
	r := newRooms(t, Config{MaxPerRoom: 2, MaxPerNode: 3})
	for _, id := range []string{"a", "b"} {
		p, _ := newParticipant(id, RoleStudent)
		mustJoin(t, r, "one", p)
	}
	c, _ := newParticipant("c", RoleStudent)
	if _, _, err := r.Join("one", c); !errors.Is(err, ErrRoomFull) {
		t.Fatalf("third in a room of 2: %v", err)
	}
	mustJoin(t, r, "two", c)
	d, _ := newParticipant("d", RoleStudent)
	if _, _, err := r.Join("three", d); !errors.Is(err, ErrNodeFull) {
		t.Fatalf("fourth on a node of 3: %v", err)
	}
	// A refused join leaves no empty room behind.
	if s := r.Stats(); s.Rooms != 2 || r.Has("three") {
		t.Errorf("rooms after a node_full refusal: %+v (has three: %v), want the 2 with people", s, r.Has("three"))
	}
	// A replacement is not a new seat.
	a2, _ := newParticipant("a", RoleStudent)
	a2.SID = "PA_a2"
	mustJoin(t, r, "one", a2)
	if s := r.Stats(); s.Students != 3 {
		t.Errorf("stats after a replacement: %+v", s)
	}
}

func TestReplaceEvictsOld(t *testing.T) {
	r := newRooms(t, Config{})
	proctor, pRec := newParticipant("proctor", RoleProctor)
	mustJoin(t, r, "exam", proctor)
	old, oldRec := newParticipant("alice", RoleStudent)
	rm, _ := mustJoin(t, r, "exam", old)
	neu, _ := newParticipant("alice", RoleStudent)
	neu.SID = "PA_alice2"
	mustJoin(t, r, "exam", neu)
	if oldRec.evicted != ReasonReplaced {
		t.Errorf("old session evicted with %q", oldRec.evicted)
	}
	rm.Leave(old, ReasonDisconnect) // the old session's own cleanup: a no-op
	want := []string{"joined alice", "left alice replaced", "joined alice"}
	if got := pRec.log(); !equal(got, want) {
		t.Errorf("proctor was told %v, want %v", got, want)
	}
	if s := r.Stats(); s.Students != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestStaleJoinDoesNotReplace: a join from a connection older than the
// identity's session in the room is refused and changes nothing; a newer
// connection's join replaces, and so does an unordered one (Conn 0).
func TestStaleJoinDoesNotReplace(t *testing.T) {
	r := newRooms(t, Config{})
	proctor, pRec := newParticipant("proctor", RoleProctor)
	mustJoin(t, r, "exam", proctor)
	live, liveRec := newParticipant("alice", RoleStudent)
	live.Conn = 7
	mustJoin(t, r, "exam", live)

	stale, staleRec := newParticipant("alice", RoleStudent)
	stale.SID, stale.Conn = "PA_alice_stale", 6
	if _, _, err := r.Join("exam", stale); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("stale join: %v, want ErrSuperseded", err)
	}
	if liveRec.evicted != "" || staleRec.evicted != "" {
		t.Errorf("evicted: live %q, stale %q", liveRec.evicted, staleRec.evicted)
	}
	if got, want := pRec.log(), []string{"joined alice"}; !equal(got, want) {
		t.Errorf("proctor was told %v, want %v", got, want)
	}

	newer, _ := newParticipant("alice", RoleStudent)
	newer.SID, newer.Conn = "PA_alice_newer", 8
	mustJoin(t, r, "exam", newer)
	if liveRec.evicted != ReasonReplaced {
		t.Errorf("older session evicted with %q, want %q", liveRec.evicted, ReasonReplaced)
	}
	unordered, _ := newParticipant("alice", RoleStudent)
	unordered.SID = "PA_alice_unordered"
	mustJoin(t, r, "exam", unordered)
	if s := r.Stats(); s.Students != 1 || s.Proctors != 1 {
		t.Errorf("stats %+v, want one student and one proctor", s)
	}
}

// TestEmptyRoomGrace: an empty room lives for EmptyTimeout, is reused if
// someone comes back in time, and is dropped after.
func TestEmptyRoomGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRooms(t, Config{EmptyTimeout: 30 * time.Second})
		p, _ := newParticipant("alice", RoleStudent)
		rm, _ := mustJoin(t, r, "exam", p)
		rm.Leave(p, ReasonLeft)
		time.Sleep(20 * time.Second)
		synctest.Wait()
		if s := r.Stats(); s.Rooms != 1 {
			t.Fatalf("room dropped before its grace period: %+v", s)
		}
		p2, _ := newParticipant("bob", RoleStudent)
		rm2, _ := mustJoin(t, r, "exam", p2)
		if rm2 != rm {
			t.Error("a room within its grace period was not reused")
		}
		rm2.Leave(p2, ReasonLeft)
		time.Sleep(31 * time.Second)
		synctest.Wait()
		if s := r.Stats(); s.Rooms != 0 {
			t.Errorf("empty room still there after its grace period: %+v", s)
		}
	})
}

func TestCloseEvictsAndRefuses(t *testing.T) {
	r := newRooms(t, Config{})
	p, rec := newParticipant("alice", RoleStudent)
	mustJoin(t, r, "exam", p)
	r.Close(ReasonShutdown)
	if rec.evicted != ReasonShutdown {
		t.Errorf("evicted with %q", rec.evicted)
	}
	q, _ := newParticipant("bob", RoleStudent)
	if _, _, err := r.Join("exam", q); !errors.Is(err, ErrClosed) {
		t.Errorf("join after close: %v", err)
	}
}

func TestParseRole(t *testing.T) {
	for _, s := range []string{"student", "proctor", "admin", "reviewer"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"", "Student", "teacher"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrUnknownRole) {
			t.Errorf("%q accepted", s)
		}
	}
}
