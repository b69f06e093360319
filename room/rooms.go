package room

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/invigil/invigil/sfu"
)

const (
	// DefaultMaxPerRoom fits the platform's 1:25 proctoring ratio four
	// times over: a large sitting with several proctors in one room.
	DefaultMaxPerRoom = 100
	// DefaultMaxPerNode is what one node serves before it refuses joins;
	// docs/benchmarks.md gives the figures to size it from.
	DefaultMaxPerNode = 1000
	// DefaultMaxRooms bounds rooms per node: at the 1:25 ratio, a full
	// node of DefaultMaxPerNode holds ~40 rooms; 200 leaves room for many
	// small ones (retakes, single students) without letting a flood of
	// one-person rooms exhaust memory.
	DefaultMaxRooms = 200
	// DefaultEmptyTimeout keeps an empty room a while, so a proctor whose
	// Wi-Fi drops finds the room as it was when it comes back.
	DefaultEmptyTimeout = 30 * time.Second
)

// Config sets the limits of a Rooms registry.
type Config struct {
	MaxPerRoom   int           // participants in one room
	MaxPerNode   int           // participants on this node
	MaxRooms     int           // rooms on this node
	EmptyTimeout time.Duration // how long an empty room lives
	// Events, if set, receives every room's audit trail.
	Events EventSink
	// NodeID names this node in audit events.
	NodeID string
	// ResumeWindow is how long a student whose connection was lost stays
	// in the room, to come back as the same participant; 0 means
	// DefaultResumeWindow, negative turns it off.
	ResumeWindow time.Duration
	// Logger receives the package's lines; nil discards them.
	Logger *slog.Logger
}

// Validate checks the limits.
func (c Config) Validate() error {
	if c.MaxPerRoom < 0 || c.MaxPerNode < 0 || c.MaxRooms < 0 || c.EmptyTimeout < 0 {
		return errors.New("room: limits must not be negative")
	}
	return nil
}

// Rooms is the node's registry of rooms. Rooms are made on first join and
// dropped once empty for Config.EmptyTimeout.
type Rooms struct {
	cfg Config
	log *slog.Logger

	// mu guards rooms, total, draining, closed, hooks and ended. Lock
	// order: Rooms.mu, then Room.mu.
	mu       sync.Mutex
	rooms    map[string]*Room
	total    int
	draining bool
	closed   bool
	hooks    []PublishHook
	ended    endedMarks // rooms an admin ended, see End
}

// PublishHook is told of each track a student publishes, after the
// room's own bookkeeping, on the track's goroutine; it must not block.
type PublishHook func(room string, p *Participant, t Track)

// OnPublish adds a hook told of every student track published from now
// on (the recorder's). The node adds its hooks before it serves.
func (r *Rooms) OnPublish(h PublishHook) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, h)
}

// publishHooks returns the hooks to call for one publish.
func (r *Rooms) publishHooks() []PublishHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hooks
}

// Stats is a snapshot of the registry's occupancy.
type Stats struct {
	Rooms    int
	Students int
	Proctors int
}

// New makes a registry; zero limits take the defaults.
func New(cfg Config) (*Rooms, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPerRoom == 0 {
		cfg.MaxPerRoom = DefaultMaxPerRoom
	}
	if cfg.MaxPerNode == 0 {
		cfg.MaxPerNode = DefaultMaxPerNode
	}
	if cfg.MaxRooms == 0 {
		cfg.MaxRooms = DefaultMaxRooms
	}
	if cfg.EmptyTimeout == 0 {
		cfg.EmptyTimeout = DefaultEmptyTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Rooms{cfg: cfg, log: cfg.Logger, rooms: make(map[string]*Room)}, nil
}

// Join puts p into the named room, making the room if needed. It returns
// the room and what p may see of the others already there. A participant
// with p's identity already in the room is replaced: it is removed and
// evicted with ReasonReplaced, unless its connection is newer than p's
// (ErrSuperseded).
func (r *Rooms) Join(name string, p *Participant) (*Room, []ParticipantInfo, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, nil, ErrClosed
	}
	if r.ended.refuses(name, p.Issued) {
		r.mu.Unlock()
		return nil, nil, ErrRoomEnded
	}
	rm := r.rooms[name]
	if rm == nil {
		if r.draining {
			r.mu.Unlock()
			return nil, nil, ErrDraining
		}
		if len(r.rooms) >= r.cfg.MaxRooms {
			r.mu.Unlock()
			return nil, nil, ErrTooManyRooms
		}
		if r.total >= r.cfg.MaxPerNode {
			// Refused before the room exists: it would stay open, empty.
			r.mu.Unlock()
			return nil, nil, ErrNodeFull
		}
		rm = &Room{name: name, rooms: r, started: time.Now().UTC(), participants: make(map[string]*Participant)}
		r.rooms[name] = rm
		r.log.Info("room opened", "room", name)
	}
	rm.mu.Lock()
	old := rm.sessionLocked(p.Identity, p.Device)
	if old != nil && p.Conn != 0 && old.Conn > p.Conn {
		rm.mu.Unlock()
		r.mu.Unlock()
		return nil, nil, ErrSuperseded
	}
	if old == nil {
		if len(rm.participants) >= r.cfg.MaxPerRoom {
			rm.mu.Unlock()
			r.mu.Unlock()
			return nil, nil, ErrRoomFull
		}
		if r.total >= r.cfg.MaxPerNode {
			rm.mu.Unlock()
			r.mu.Unlock()
			return nil, nil, ErrNodeFull
		}
		r.total++
	}
	var gone removal
	var lostFor time.Duration
	var resumed []talk // proctors talking to old go on talking to p
	if old != nil {
		if old.resume != nil {
			old.resume.Stop()
			lostFor = time.Since(old.lostAt)
		}
		gone = rm.removeLocked(old, ReasonReplaced)
		gone.talks, resumed = keepTalking(gone.talks, old, p)
	}
	if rm.emptyTimer != nil {
		rm.emptyTimer.Stop()
		rm.emptyTimer = nil
	}
	rm.participants[p.SID] = p
	view, existing, watchers := rm.admitLocked(p)
	rm.mu.Unlock()
	r.mu.Unlock()

	if old != nil {
		gone.announce(rm)
		old.Notify.Evict(ReasonReplaced)
		gone.record(r, name)
		if lostFor > 0 {
			r.record(name, EventReconnect, old.Identity, old.Identity, withDevice(old.Device, map[string]any{
				"sid": p.SID, "previous_sid": old.SID, "gap_ms": lostFor.Milliseconds()}))
		} else {
			r.record(name, EventLeave, old.Identity, old.Identity, withDevice(old.Device, map[string]any{"reason": ReasonReplaced, "sid": old.SID}))
		}
	}
	r.record(name, EventJoin, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"role": string(p.Role), "sid": p.SID, "name": p.Name}))
	info := ParticipantInfo{SID: p.SID, Identity: p.Identity, Name: p.Name, Role: p.Role, Device: p.Device}
	for _, w := range watchers {
		w.Notify.ParticipantJoined(info)
	}
	for _, s := range existing {
		if err := p.Media.Subscribe(s.track, s.quality); err != nil {
			p.Log.Warn("subscribe failed", "track", s.track.ID(), "err", err)
		}
	}
	for _, tk := range resumed {
		for _, t := range tk.mics {
			if err := p.Media.Subscribe(t, sfu.QualityLow); err != nil {
				p.Log.Warn("talk-back subscribe failed", "track", t.ID(), "err", err)
			}
		}
		p.Notify.Intervene(talkChange(tk.proctor, true))
	}
	return rm, view, nil
}

// leave removes p from its room, unless it already left.
// DefaultResumeWindow is how long a student whose connection was lost is
// kept, to rejoin as the same participant (serve --resume-window).
const DefaultResumeWindow = 30 * time.Second

// Lost is called instead of Leave when p's connection was lost without a
// goodbye. A student stays in the room for the resume window, with a
// disconnect event (proctors see it at once); rejoining within it is a
// reconnect, not a new participant. Others leave at once.
func (rm *Room) Lost(p *Participant) {
	r := rm.rooms
	window := r.cfg.ResumeWindow
	if window == 0 {
		window = DefaultResumeWindow
	}
	if p.Role != RoleStudent || window < 0 {
		rm.Leave(p, ReasonDisconnect)
		return
	}
	rm.mu.Lock()
	if rm.participants[p.SID] != p || p.resume != nil {
		rm.mu.Unlock()
		return
	}
	if !p.published {
		// Gone before sending anything (mid-handshake): nothing to resume.
		rm.mu.Unlock()
		rm.Leave(p, ReasonDisconnect)
		return
	}
	p.lostAt = time.Now()
	p.resume = time.AfterFunc(window, func() { r.leave(rm, p, ReasonDisconnect) })
	rm.mu.Unlock()
	p.Log.Info("connection lost; keeping the student for the resume window", "window", window)
	r.record(rm.name, EventDisconnect, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"sid": p.SID, "resume_window_ms": window.Milliseconds()}))
}

func (r *Rooms) leave(rm *Room, p *Participant, reason string) {
	r.mu.Lock()
	rm.mu.Lock()
	if rm.participants[p.SID] != p {
		rm.mu.Unlock()
		r.mu.Unlock()
		return
	}
	gone := rm.removeLocked(p, reason)
	r.total--
	if len(rm.participants) == 0 && !r.closed {
		rm.emptyTimer = time.AfterFunc(r.cfg.EmptyTimeout, func() { r.dropIfEmpty(rm) })
	}
	rm.mu.Unlock()
	r.mu.Unlock()
	gone.announce(rm)
	gone.record(r, rm.name)
	r.record(rm.name, EventLeave, p.Identity, p.Identity, withDevice(p.Device, map[string]any{"reason": reason, "sid": p.SID}))
}

func (r *Rooms) dropIfEmpty(rm *Room) {
	r.mu.Lock()
	rm.mu.Lock()
	dropped := len(rm.participants) == 0 && r.rooms[rm.name] == rm
	if dropped {
		delete(r.rooms, rm.name)
	}
	rm.mu.Unlock()
	r.mu.Unlock()
	if dropped {
		r.log.Info("room closed", "room", rm.name, "reason", "empty")
		r.record(rm.name, EventRoomClosed, "", "", map[string]any{"reason": "empty"})
	}
}

// Has reports whether room is open on this node.
func (r *Rooms) Has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.rooms[name]
	return ok
}

// Names lists the rooms open on this node.
func (r *Rooms) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.rooms))
	for n := range r.rooms {
		names = append(names, n)
	}
	return names
}

// SetDraining stops (or resumes) opening new rooms. Rooms already open
// keep admitting their participants, so a student who reconnects gets
// back into a room that is finishing here.
func (r *Rooms) SetDraining(d bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.draining = d
}

// Participants counts everyone connected.
func (r *Rooms) Participants() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Stats counts rooms and participants by role.
func (r *Rooms) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Rooms: len(r.rooms)}
	for _, rm := range r.rooms {
		students, proctors := rm.countRoles()
		s.Students += students
		s.Proctors += proctors
	}
	return s
}

// countRoles counts the room's students and proctors; it takes rm.mu.
func (rm *Room) countRoles() (students, proctors int) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for _, p := range rm.participants {
		switch p.Role {
		case RoleStudent:
			students++
		case RoleProctor:
			proctors++
		}
	}
	return students, proctors
}

// Close refuses further joins and evicts every participant with reason.
// Sessions end asynchronously; their owners wait for them.
func (r *Rooms) Close(reason string) {
	r.mu.Lock()
	r.closed = true
	var all []*Participant
	for _, rm := range r.rooms {
		rm.mu.Lock()
		for _, p := range rm.participants {
			all = append(all, p)
		}
		if rm.emptyTimer != nil {
			rm.emptyTimer.Stop()
		}
		rm.mu.Unlock()
	}
	r.mu.Unlock()
	for _, p := range all {
		p.Notify.Evict(reason)
	}
}
