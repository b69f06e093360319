package cluster

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Status is what a node reports of itself on each heartbeat; the member
// adds the rates (forwarded bitrate, CPU) over the last heartbeat.
type Status struct {
	Rooms, Students, Proctors int
	// Capacity is the node's participant limit; FreeSeats what is left of it.
	Capacity, FreeSeats int
	Draining            bool
	// Tracks are the media tracks published on the node now.
	Tracks int
	// BytesOut are the media bytes forwarded since the node started.
	BytesOut uint64
}

// MemberConfig sets up a Member.
type MemberConfig struct {
	Store   Cluster
	NodeID  string
	URL     string // this node's public base URL
	Version string
	// Status is read on every heartbeat.
	Status func() Status
	// Rooms lists the rooms this node holds, read on every lease renewal.
	Rooms func() []string
	// OnStoreError, if set, is called on each failure to reach the store
	// (a metric).
	OnStoreError func()
	// Logger receives the store's outages and recoveries; nil discards them.
	Logger *slog.Logger
}

// Member is this node's part in the cluster: it publishes the node's
// occupancy every HeartbeatInterval, renews its rooms' leases every
// LeaseRenew, and answers signaling's question of who holds a room.
type Member struct {
	cfg  MemberConfig
	log  *slog.Logger
	down atomic.Bool // the store failed last time; logged once per outage

	// A join answered local is arriving from before its claim until its
	// participant is in the room (Arrive). Its claim takes its seat off
	// the room's reservation at once, while the heartbeat, which
	// overwrites free_seats, counts it from the node's own view: arriving
	// or in the room. Each arrival has a number (seq) that its claim
	// carries to the store and each heartbeat says how far its snapshot
	// went, so the store counts a seat the claim took once whichever of
	// the two runs first (see Redis.Heartbeat), and no lock is ever held
	// across a call to the store.
	mu       sync.Mutex // guards seq and arriving, and makes the snapshot one step
	seq      int64      // the last arrival's number
	arriving int
	// entering is held shared while a participant enters the room and
	// its arrival ends, and tried exclusively by the heartbeat's
	// snapshot, so the snapshot sees the participant arriving or in the
	// room, not both (see snapshot).
	entering sync.RWMutex
}

// NewMember returns a Member; Run starts its loops.
func NewMember(cfg MemberConfig) *Member {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnStoreError == nil {
		cfg.OnStoreError = func() {}
	}
	// Arrival numbers grow across restarts of the node (the store keeps
	// the last one a heartbeat reported): they start at the clock, in µs.
	return &Member{cfg: cfg, log: cfg.Logger, seq: time.Now().UnixMicro()}
}

// Owner implements signaling's Owners: the URL of the node that holds
// room, claiming it for this node when nobody does.
//
// A draining node claims no room it does not hold: it places the room
// instead (the owner if there is one, else a ready node), so a client
// sent away by the drain and rejoining here is redirected to where the
// room goes next.
//
// A local answer (with no error) counts the joining participant's seat
// as taken until the caller calls Arrive, exactly once.
func (m *Member) Owner(ctx context.Context, room string) (url string, local bool, err error) {
	seq := m.startArrival()
	var p Placement
	if m.cfg.Status().Draining && !slices.Contains(m.cfg.Rooms(), room) {
		p, err = m.cfg.Store.Place(ctx, room, 0)
		if err != nil && !errors.Is(err, ErrNoCapacity) {
			m.cfg.OnStoreError()
		}
	} else if p, err = m.cfg.Store.Claim(ctx, room, m.cfg.NodeID, seq); err != nil {
		m.cfg.OnStoreError()
	}
	if err != nil || p.NodeID != m.cfg.NodeID {
		m.endArrival()
		return p.URL, false, err
	}
	return p.URL, true, nil
}

// Arrive ends the arrival of a join Owner answered local: enter puts
// its participant in the room (the node's live count has it after), or
// is nil when the join failed.
func (m *Member) Arrive(enter func()) {
	m.entering.RLock()
	defer m.entering.RUnlock()
	if enter != nil {
		enter()
	}
	m.endArrival()
}

func (m *Member) startArrival() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	m.arriving++
	return m.seq
}

func (m *Member) endArrival() {
	m.mu.Lock()
	m.arriving--
	m.mu.Unlock()
}

// snapshot is the node's status for a heartbeat, its free seats less
// the seats of joins still arriving, and the number of the last arrival
// it counts. It waits a little for participants entering the room to be
// in (so each is counted once); past that it counts those arriving and
// entered twice, which errs on the side of fewer free seats, until the
// next heartbeat.
func (m *Member) snapshot() (Status, int64) {
	for range 20 {
		if m.entering.TryLock() {
			defer m.entering.Unlock()
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.cfg.Status()
	st.FreeSeats = max(st.FreeSeats-m.arriving, 0)
	return st, m.seq
}

// Run heartbeats and renews leases until ctx ends. Store errors are
// counted, and logged when the store goes away and when it comes back:
// media never depends on it, and /readyz does not change.
func (m *Member) Run(ctx context.Context) {
	// Forwarded bitrate and CPU are rates over the last heartbeat.
	lastAt, lastBytes, lastCPU := time.Now(), m.cfg.Status().BytesOut, processCPU()
	heartbeat := func() {
		st, seq := m.snapshot()
		cpu, now := processCPU(), time.Now()
		dt := now.Sub(lastAt).Seconds()
		var bps uint64
		var cpuShare float64
		if dt > 0 {
			bps = uint64(float64(st.BytesOut-lastBytes) * 8 / dt)
			cpuShare = (cpu - lastCPU).Seconds() / dt / float64(runtime.NumCPU())
		}
		lastAt, lastBytes, lastCPU = now, st.BytesOut, cpu
		hctx, cancel := context.WithTimeout(ctx, HeartbeatInterval)
		defer cancel()
		m.report("heartbeat", m.cfg.Store.Heartbeat(hctx, Node{ID: m.cfg.NodeID, URL: m.cfg.URL, Rooms: st.Rooms,
			Students: st.Students, Proctors: st.Proctors, Capacity: st.Capacity,
			Tracks: st.Tracks, BitrateBps: bps, CPU: cpuShare,
			FreeSeats: st.FreeSeats, Draining: st.Draining, Version: m.cfg.Version, ArrivalSeq: seq}))
	}
	renew := func() {
		rctx, cancel := context.WithTimeout(ctx, LeaseRenew)
		defer cancel()
		m.report("lease renewal", m.cfg.Store.Renew(rctx, m.cfg.NodeID, m.cfg.Rooms()))
	}
	heartbeat()
	beat := time.NewTicker(HeartbeatInterval)
	defer beat.Stop()
	lease := time.NewTicker(LeaseRenew)
	defer lease.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			heartbeat()
		case <-lease.C:
			renew()
		}
	}
}

// report counts and logs a store failure, once per outage.
func (m *Member) report(what string, err error) {
	if err != nil {
		m.cfg.OnStoreError()
		if m.down.CompareAndSwap(false, true) {
			m.log.Error("cluster store unreachable: rooms here keep their media; placement and joins of rooms held elsewhere fail until it is back", "during", what, "err", err)
		}
		return
	}
	if m.down.CompareAndSwap(true, false) {
		m.log.Info("cluster store reachable again", "during", what)
	}
}

// processCPU is the CPU time this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
