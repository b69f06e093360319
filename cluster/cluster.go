package cluster

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Timing of cluster mode (docs/cluster.md).
const (
	// HeartbeatInterval is how often a node publishes its occupancy.
	HeartbeatInterval = 2 * time.Second
	// NodeTTL is how long a node's occupancy lives without a heartbeat:
	// three missed heartbeats and the node is gone.
	NodeTTL = 3 * HeartbeatInterval
	// LeaseTTL is how long a room's ownership lasts without renewal; the
	// owner renews every LeaseRenew. A dead owner's rooms are placed
	// elsewhere at most LeaseTTL after its last renewal.
	LeaseTTL   = 10 * time.Second
	LeaseRenew = 3 * time.Second
	// ReservationTTL is how long seats placed on a node count against it
	// before its heartbeat can show them: an exam's join storm.
	ReservationTTL = 60 * time.Second
)

// Node is one node's occupancy, published on every heartbeat.
type Node struct {
	ID          string  `json:"node_id"`
	URL         string  `json:"url"`
	Rooms       int     `json:"rooms"`
	Students    int     `json:"students"`
	Proctors    int     `json:"proctors"`
	Tracks      int     `json:"tracks"`
	BitrateBps  uint64  `json:"forwarded_bps"`
	CPU         float64 `json:"cpu"`
	Capacity    int     `json:"capacity"`
	FreeSeats   int     `json:"free_seats"`
	Draining    bool    `json:"draining"`
	Version     string  `json:"version"`
	UpdatedUnix int64   `json:"updated_unix_ms"`
	// ArrivalSeq is the number of the last arrival (a join's claim) the
	// heartbeat's FreeSeats counts; see Member.
	ArrivalSeq int64 `json:"-"`
}

// Placement says which node holds a room.
type Placement struct {
	Room   string `json:"room"`
	NodeID string `json:"node_id"`
	URL    string `json:"url"`
}

// Errors.
var (
	// ErrNoCapacity: no ready node has room for the seats asked.
	ErrNoCapacity = errors.New("cluster: no ready node has room")
	// ErrUnavailable wraps a failure to reach the shared store.
	ErrUnavailable = errors.New("cluster: store unavailable")
)

// Cluster is what nodes share. Memory is the single-node default; Redis
// is cluster mode. The rest of the server does not know which it has.
type Cluster interface {
	// Heartbeat publishes this node's occupancy.
	Heartbeat(ctx context.Context, n Node) error
	// Nodes lists the live nodes.
	Nodes(ctx context.Context) ([]Node, error)
	// Place returns room's owner if it is alive, else assigns the ready
	// node with the most free seats after reservations that has room
	// for expected more, and reserves them.
	Place(ctx context.Context, room string, expected int) (Placement, error)
	// Claim is asked when a join for room reaches node: it returns the
	// live owner, making node the owner when there is none. arrival
	// numbers the join among node's (Node.ArrivalSeq); 0 is a join the
	// node's heartbeats do not count.
	Claim(ctx context.Context, room, node string, arrival int64) (Placement, error)
	// Renew extends node's leases on rooms (re-claiming any the store
	// lost, e.g. after a Redis restart).
	Renew(ctx context.Context, node string, rooms []string) error
	// Release gives up node's lease on a room that closed.
	Release(ctx context.Context, room, node string) error
	Close() error
}

// Memory is the single-node Cluster: this node owns every room.
type Memory struct {
	// Held, if set, says whether the node holds a room now: a room it
	// holds is placed here while the node drains or is full (its
	// participants join it here), as Redis's owner is.
	Held func(room string) bool

	mu   sync.Mutex
	self Node
}

// NewMemory returns the single-node Cluster for node id at url.
func NewMemory(id, url string) *Memory {
	return &Memory{self: Node{ID: id, URL: url}}
}

func (m *Memory) Heartbeat(_ context.Context, n Node) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.self = n
	return nil
}

func (m *Memory) Nodes(context.Context) ([]Node, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return []Node{m.self}, nil
}

func (m *Memory) Place(_ context.Context, room string, expected int) (Placement, error) {
	if m.Held != nil && m.Held(room) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return Placement{Room: room, NodeID: m.self.ID, URL: m.self.URL}, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.self.Draining || (m.self.Capacity > 0 && m.self.FreeSeats < max(expected, 1)) {
		return Placement{}, ErrNoCapacity
	}
	return Placement{Room: room, NodeID: m.self.ID, URL: m.self.URL}, nil
}

func (m *Memory) Claim(_ context.Context, room, _ string, _ int64) (Placement, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Placement{Room: room, NodeID: m.self.ID, URL: m.self.URL}, nil
}

func (m *Memory) Renew(context.Context, string, []string) error { return nil }
func (m *Memory) Release(context.Context, string, string) error { return nil }
func (m *Memory) Close() error                                  { return nil }

var _, _ Cluster = (*Memory)(nil), (*Redis)(nil)
