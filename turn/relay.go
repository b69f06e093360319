package turn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/transport/v5/reuseport"
	pionturn "github.com/pion/turn/v5"
)

// connectTimeout bounds the server's outgoing TCP connection for a Connect
// request: RFC 6062 §5.2 says it "MUST be at least 30 seconds".
const connectTimeout = 30 * time.Second

// allocation is Invigil's state for one pion allocation: its owner, its
// bandwidth buckets and its relayed-byte count. Every relay socket of the
// allocation (the UDP socket, or the TCP listener and its peer
// connections) shares it.
type allocation struct {
	user      string
	relayAddr string                 // advertised relay address, for logs
	key       string                 // addrKey of relayAddr: the registry key
	up, down  *tokenBucket           // client→peer and peer→client; nil = no cap
	bytes     atomic.Uint64          // payload bytes to and from peers
	client    atomic.Pointer[string] // addrKey of the allocation's client, once pion reports it
}

// relays is the registry of live allocations: the per-user quota and the
// relayed-byte totals (RFC 8656 §7.2 step 10: the quota SHOULD be per
// username, here per identity so fresh credentials do not reset it).
type relays struct {
	maxPerUser int // <= 0: unlimited

	mu      sync.Mutex             // guards perUser and live
	perUser map[string]int         // identity → live allocations
	live    map[string]*allocation // addrKey of the relay address → allocation

	closedBytes atomic.Uint64 // bytes of allocations already closed
}

func newRelays(maxPerUser int) *relays {
	return &relays{maxPerUser: maxPerUser, perUser: make(map[string]int), live: make(map[string]*allocation)}
}

// underQuota reports whether user may create one more allocation. It is
// pion's QuotaHandler (answered 486 when false); reserve enforces the
// same limit atomically.
func (r *relays) underQuota(user string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxPerUser <= 0 || r.perUser[user] < r.maxPerUser
}

// reserve takes one of user's quota slots, or fails with ErrQuota.
func (r *relays) reserve(user string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxPerUser > 0 && r.perUser[user] >= r.maxPerUser {
		return ErrQuota
	}
	r.perUser[user]++
	return nil
}

// unreserve gives back a slot reserve took.
func (r *relays) unreserve(user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.perUser[user]--; r.perUser[user] <= 0 {
		delete(r.perUser, user)
	}
}

func (r *relays) add(a *allocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live[a.key] = a
}

// remove unregisters a and gives back its quota slot.
func (r *relays) remove(a *allocation) {
	r.mu.Lock()
	delete(r.live, a.key)
	r.mu.Unlock()
	r.closedBytes.Add(a.bytes.Load())
	r.unreserve(a.user)
}

func (r *relays) lookup(relay net.Addr) *allocation {
	k := addrKey(relay)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live[k]
}

func (r *relays) relayedBytes() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.closedBytes.Load()
	for _, a := range r.live {
		n += a.bytes.Load()
	}
	return n
}

// relayGen is the pion RelayAddressGenerator: it opens relay sockets on
// RelayBindIP, advertises them at RelayIP, and wraps them to enforce the
// quota, the bandwidth cap and the port policy and to count bytes.
type relayGen struct {
	s *Server
}

var _ pionturn.RelayAddressGenerator = relayGen{}

// Validate implements pionturn.RelayAddressGenerator.
func (relayGen) Validate() error { return nil }

// newAllocation reserves user's quota slot and builds the allocation state
// for the relay advertised at relay.
func (g relayGen) newAllocation(user string, relay net.Addr) (*allocation, error) {
	if g.s.isClosing() {
		return nil, net.ErrClosed
	}
	if err := g.s.relays.reserve(user); err != nil {
		g.s.refuse(refQuota, func() []slog.Attr { return []slog.Attr{slog.String("user", user)} })
		return nil, err
	}
	now := time.Now()
	return &allocation{
		user:      user,
		relayAddr: relay.String(),
		key:       addrKey(relay),
		up:        newTokenBucket(g.s.cfg.MaxBitsPerSecond, now),
		down:      newTokenBucket(g.s.cfg.MaxBitsPerSecond, now),
	}, nil
}

// AllocatePacketConn opens a UDP relay (RFC 8656 §7.2).
func (g relayGen) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	bind := net.JoinHostPort(g.s.cfg.RelayBindIP.String(), strconv.Itoa(conf.RequestedPort))
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), conf.Network, bind)
	if err != nil {
		return nil, nil, fmt.Errorf("turn: open %s relay on %s: %w", conf.Network, bind, err)
	}
	if conf.UserID == "" {
		// pion probing for a free even port (RFC 8656 §7.2, EVEN-PORT); it
		// closes the socket at once.
		return pc, pc.LocalAddr(), nil
	}
	relay := &net.UDPAddr{IP: g.s.cfg.RelayIP, Port: pc.LocalAddr().(*net.UDPAddr).Port}
	a, err := g.newAllocation(conf.UserID, relay)
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	g.s.relays.add(a)
	g.s.track.add()
	return &relayPacketConn{PacketConn: pc, s: g.s, a: a}, relay, nil
}

// AllocateListener opens a TCP relay (RFC 6062 §5.1). Its port is shared
// with the allocation's outgoing connections, hence SO_REUSEADDR/PORT.
func (g relayGen) AllocateListener(conf pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	bind := net.JoinHostPort(g.s.cfg.RelayBindIP.String(), strconv.Itoa(conf.RequestedPort))
	lc := net.ListenConfig{Control: reuseport.Control}
	ln, err := lc.Listen(context.Background(), conf.Network, bind)
	if err != nil {
		return nil, nil, fmt.Errorf("turn: open %s relay on %s: %w", conf.Network, bind, err)
	}
	relay := &net.TCPAddr{IP: g.s.cfg.RelayIP, Port: ln.Addr().(*net.TCPAddr).Port}
	a, err := g.newAllocation(conf.UserID, relay)
	if err != nil {
		_ = ln.Close()
		return nil, nil, err
	}
	g.s.relays.add(a)
	g.s.track.add()
	return &relayListener{Listener: ln, s: g.s, a: a}, relay, nil
}

// AllocateConn opens the relay's TCP connection to a peer for a Connect
// request (RFC 6062 §5.2). pion has checked the peer's IP with the
// permission handler; the port is checked here.
func (g relayGen) AllocateConn(conf pionturn.AllocateConnConfig) (net.Conn, error) {
	a := g.s.relays.lookup(conf.LocalAddr)
	if a == nil || g.s.isClosing() {
		return nil, ErrNoAllocation
	}
	peer := netAddrPort(conf.RemoteAddr)
	if class := g.s.policy.checkAddrPort(peer); class != "" {
		if c := a.client.Load(); c != nil {
			g.s.codes.refusedPeer(*c)
		}
		g.s.refusePeer("user", a.user, peer, class)
		return nil, fmt.Errorf("%w: %s (%s)", ErrForbiddenPeer, peer, class)
	}
	local := &net.TCPAddr{IP: g.s.cfg.RelayBindIP, Port: conf.LocalAddr.(*net.TCPAddr).Port}
	d := net.Dialer{LocalAddr: local, Control: reuseport.Control}
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	// A Close of the server must not wait for a peer that never answers.
	var wg sync.WaitGroup
	defer wg.Wait()
	dialed := make(chan struct{})
	defer close(dialed)
	wg.Go(func() {
		select {
		case <-g.s.closing:
			cancel()
		case <-dialed:
		}
	})
	c, err := d.DialContext(ctx, conf.Network, conf.RemoteAddr.String())
	if err != nil {
		return nil, fmt.Errorf("turn: connect relay %s to %s: %w", local, conf.RemoteAddr, err)
	}
	g.s.track.add()
	return newRelayConn(c, g.s, a), nil
}

// relayPacketConn is a UDP relay socket. Reads and writes run on pion's
// per-allocation goroutine and on the client socket's read loop; the
// per-datagram work is a policy check that media addresses pass in a few
// comparisons, one token-bucket update and one atomic add.
type relayPacketConn struct {
	net.PacketConn
	s    *Server
	a    *allocation
	once sync.Once
}

// ReadFrom returns the next datagram from a peer within the allocation's
// peer→client budget; datagrams over it are dropped.
func (c *relayPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, from, err
		}
		if c.a.down != nil && !c.a.down.allow(time.Now(), n) {
			c.s.refuse(refBandwidth, c.bandwidthAttrs("peer_to_client"))
			continue
		}
		c.a.bytes.Add(uint64(n))
		return n, from, nil
	}
}

// WriteTo sends a client's datagram to a peer (RFC 8656 §11.2, §12.4)
// unless the port policy or the client→peer budget refuses it; a refused
// datagram is dropped silently, as Send indications and ChannelData have
// no answer.
func (c *relayPacketConn) WriteTo(p []byte, to net.Addr) (int, error) {
	peer := netAddrPort(to)
	if class := c.s.policy.checkAddrPort(peer); class != "" {
		c.s.refusePeer("user", c.a.user, peer, class)
		return len(p), nil
	}
	if c.a.up != nil && !c.a.up.allow(time.Now(), len(p)) {
		c.s.refuse(refBandwidth, c.bandwidthAttrs("client_to_peer"))
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, to)
	c.a.bytes.Add(uint64(n))
	return n, err
}

func (c *relayPacketConn) bandwidthAttrs(direction string) func() []slog.Attr {
	return func() []slog.Attr {
		return []slog.Attr{
			slog.String("user", c.a.user), slog.String("relay", c.a.relayAddr),
			slog.String("direction", direction), slog.Int("max_bits_per_second", c.s.cfg.MaxBitsPerSecond),
		}
	}
}

// Close closes the socket and releases the allocation. It returns nil
// even on a repeated call: pion's manager stops closing allocations at
// the first error.
func (c *relayPacketConn) Close() error {
	c.once.Do(func() {
		if err := c.PacketConn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.s.log.Debug("turn relay close", "relay", c.a.relayAddr, "err", err)
		}
		c.s.relays.remove(c.a)
		c.s.track.done()
	})
	return nil
}

// relayListener is a TCP relay's listener (RFC 6062 §5.3: peers connect to
// it); accepted connections are counted and paced like outgoing ones.
type relayListener struct {
	net.Listener
	s    *Server
	a    *allocation
	once sync.Once
}

// Accept returns the next peer connection.
func (l *relayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.track.add()
	return newRelayConn(c, l.s, l.a), nil
}

// Close closes the listener and releases the allocation; see
// relayPacketConn.Close.
func (l *relayListener) Close() error {
	l.once.Do(func() {
		if err := l.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			l.s.log.Debug("turn relay close", "relay", l.a.relayAddr, "err", err)
		}
		l.s.relays.remove(l.a)
		l.s.track.done()
	})
	return nil
}

// relayConn is one RFC 6062 peer data connection. pion copies it to and
// from the client's data connection with io.Copy; a stream cannot drop
// bytes, so the cap paces it instead.
type relayConn struct {
	net.Conn
	s      *Server
	a      *allocation
	closed chan struct{}
	once   sync.Once
}

func newRelayConn(c net.Conn, s *Server, a *allocation) *relayConn {
	return &relayConn{Conn: c, s: s, a: a, closed: make(chan struct{})}
}

// Read reads peer→client bytes.
func (c *relayConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.a.bytes.Add(uint64(n))
		c.pace(c.a.down, n, "peer_to_client")
	}
	return n, err
}

// Write writes client→peer bytes.
func (c *relayConn) Write(p []byte) (int, error) {
	c.pace(c.a.up, len(p), "client_to_peer")
	n, err := c.Conn.Write(p)
	c.a.bytes.Add(uint64(n))
	return n, err
}

// pace waits until n bytes fit in b, or until the connection closes.
func (c *relayConn) pace(b *tokenBucket, n int, direction string) {
	if b == nil {
		return
	}
	wait := b.reserve(time.Now(), n)
	if wait <= 0 {
		return
	}
	c.s.refuse(refBandwidth, func() []slog.Attr {
		return []slog.Attr{
			slog.String("user", c.a.user), slog.String("relay", c.a.relayAddr),
			slog.String("direction", direction), slog.Int("max_bits_per_second", c.s.cfg.MaxBitsPerSecond),
		}
	})
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.closed:
	}
}

// Close closes the connection; see relayPacketConn.Close.
func (c *relayConn) Close() error {
	c.once.Do(func() {
		close(c.closed)
		if err := c.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.s.log.Debug("turn relay connection close", "relay", c.a.relayAddr, "err", err)
		}
		c.s.track.done()
	})
	return nil
}
