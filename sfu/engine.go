package sfu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/invigil/invigil/sfu/internal/mmsg"
	"github.com/pion/logging"
	"github.com/pion/stun/v4"
)

const (
	// DefaultPLIInterval is the least time between two keyframe requests
	// to one publisher track. A keyframe costs 5–10 times a delta frame;
	// a storm of late proctors must not turn into a storm of keyframes.
	DefaultPLIInterval = 500 * time.Millisecond

	// DefaultConcealKeyframes is how often, with Config.ConcealFocus, each
	// layer of every published video track is asked for a keyframe,
	// whoever watches it (conceal.go): a proctor's focus waits at most
	// this long for the high layer, and each keyframe costs the student's
	// uplink what several delta frames do (docs/recording.md measures it).
	DefaultConcealKeyframes = 2 * time.Second

	// clockTick is how often the Engine's clock runs every session's
	// timers (RTCP, NACKs, consent, state). NACKs want ~20 ms: a
	// retransmission is useful only within a few round trips.
	clockTick = 20 * time.Millisecond
)

// Config sets up an Engine. The sockets are made by the caller, so tests
// pass 127.0.0.1:0 and production passes the configured ports.
type Config struct {
	// UDP is the one socket every session shares; it must be a
	// *net.UDPConn. One goroutine reads it in batches.
	UDP net.PacketConn
	// MoreUDP are further sockets bound to UDP's address and port with
	// SO_REUSEPORT (ListenUDP makes them): the kernel hashes each client
	// to one of them, and each has its own reader, so a node uses several
	// cores while one client's packets stay on one goroutine.
	MoreUDP []net.PacketConn
	// TCP, if not nil, accepts ICE-TCP (RFC 6544, passive) for clients
	// whose networks block UDP.
	TCP net.Listener
	// AdvertiseIPs, if set, replace the socket's addresses in host
	// candidates (1:1 NAT, as on cloud VMs with a public IP).
	AdvertiseIPs []string
	// IncludeLoopback lets host candidates carry loopback addresses when
	// the sockets are bound to a wildcard address.
	IncludeLoopback bool
	// PLIInterval throttles keyframe requests per published track.
	PLIInterval time.Duration
	// ConcealFocus keeps what a publisher receives independent of who
	// watches it (conceal.go): every simulcast layer stays on, keyframes
	// are asked for on each layer every ConcealKeyframes and never on a
	// subscriber's demand, and NACKs cover every layer received.
	ConcealFocus bool
	// ConcealKeyframes is the keyframe cadence of ConcealFocus
	// (DefaultConcealKeyframes when 0).
	ConcealKeyframes time.Duration
	// Observer, if set, receives RTT and jitter from receiver reports.
	Observer Observer
	Logger   *slog.Logger
	// PionLogs receives the lines of the pion libraries the engine runs
	// (cmd/invigil bridges them to slog); nil discards them.
	PionLogs logging.LoggerFactory

	// noClock stops the Engine's timers, so a test measures the packet
	// path alone.
	noClock bool
}

// ListenUDP opens n UDP sockets on one address with SO_REUSEPORT, for
// Config.UDP (the first) and Config.MoreUDP (the rest). With port 0 the
// first picks a free port and the others share it.
func ListenUDP(network string, addr *net.UDPAddr, n int) ([]*net.UDPConn, error) {
	return mmsg.ListenReusePort(network, addr, n)
}

// Engine is Invigil's media plane: every session's ICE, DTLS and SRTP on
// the shared sockets, and the packet path between them. It is safe for
// concurrent use.
type Engine struct {
	log        *slog.Logger
	logs       logging.LoggerFactory
	cert       *certificate
	candidates []string // a=candidate values for every session's SDP
	pliGap     time.Duration
	// conceal is Config.ConcealFocus; cadence its keyframe interval.
	conceal bool
	cadence time.Duration
	obs     Observer
	counter counters
	loops   []*udpLoop
	tcp     net.Listener
	direct  sync.Pool // *sender with one slot, for writes off the readers

	// mu guards peers and ufrags. A check from an address no reader knows
	// yet looks its session up here.
	mu     sync.Mutex
	peers  map[*Peer]struct{}
	ufrags map[string]*Peer
	closed bool

	// tracksMu guards tracks: the published tracks being read now, whose
	// layers keep their own forwarding counters. An ended track's counts
	// are folded into counter, under tracksMu, so a snapshot counts every
	// packet once.
	tracksMu sync.Mutex
	tracks   map[*Track]struct{}

	done chan struct{}
	wg   sync.WaitGroup
}

// New builds an Engine over cfg's sockets and starts its readers and
// clock. Closing the Engine closes the sockets.
func New(cfg Config) (*Engine, error) {
	if cfg.UDP == nil {
		return nil, errors.New("sfu: Config.UDP is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PLIInterval <= 0 {
		cfg.PLIInterval = DefaultPLIInterval
	}
	if cfg.ConcealKeyframes <= 0 {
		cfg.ConcealKeyframes = DefaultConcealKeyframes
	}
	logs := cfg.PionLogs
	if logs == nil {
		logs = &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled, ScopeLevels: map[string]logging.LogLevel{}}
	}
	cert, err := newCertificate()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		log: cfg.Logger, logs: logs, cert: cert, pliGap: cfg.PLIInterval, obs: cfg.Observer, tcp: cfg.TCP,
		conceal: cfg.ConcealFocus, cadence: cfg.ConcealKeyframes,
		peers: map[*Peer]struct{}{}, ufrags: map[string]*Peer{}, tracks: map[*Track]struct{}{}, done: make(chan struct{}),
	}
	for _, pc := range append([]net.PacketConn{cfg.UDP}, cfg.MoreUDP...) {
		conn, ok := pc.(*net.UDPConn)
		if !ok {
			return nil, fmt.Errorf("sfu: Config.UDP must be a *net.UDPConn, not %T", pc)
		}
		l, err := newUDPLoop(e, conn)
		if err != nil {
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	first := e.loops[0].conn
	e.direct.New = func() any { return newSender(e, first, nil, 1) }
	e.candidates, err = hostCandidates(cfg, first, cfg.TCP)
	if err != nil {
		return nil, err
	}
	for _, l := range e.loops {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			l.run()
		}()
	}
	if cfg.TCP != nil {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.serveTCP(cfg.TCP)
		}()
	}
	if cfg.noClock {
		return e, nil
	}
	clock, err := mmsg.NewWriter(first, senderSlots)
	if err != nil {
		return nil, fmt.Errorf("sfu: %w", err)
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.runClock(newSender(e, first, clock, senderSlots))
	}()
	return e, nil
}

// hostCandidates lists the node's ICE candidates (RFC 8445 §5.1.1.1,
// RFC 6544 §4.5 for TCP passive): one per advertised address on the UDP
// port and, with ICE-TCP, one per address on the TCP port.
func hostCandidates(cfg Config, udp *net.UDPConn, tcp net.Listener) ([]string, error) {
	ua := udp.LocalAddr().(*net.UDPAddr)
	var ips []netip.Addr
	switch {
	case len(cfg.AdvertiseIPs) > 0:
		for _, s := range cfg.AdvertiseIPs {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("sfu: advertised IP %q: %w", s, err)
			}
			ips = append(ips, ip.Unmap())
		}
	case ua.IP != nil && !ua.IP.IsUnspecified():
		ip, _ := netip.AddrFromSlice(ua.IP)
		ips = append(ips, ip.Unmap())
	default:
		v4only := ua.IP != nil && ua.IP.To4() != nil
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil, fmt.Errorf("sfu: list interface addresses: %w", err)
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(n.IP)
			ip = ip.Unmap()
			if ip.IsLinkLocalUnicast() || ip.IsMulticast() || (ip.IsLoopback() && !cfg.IncludeLoopback) || (v4only && !ip.Is4()) {
				continue
			}
			ips = append(ips, ip)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("sfu: no address to advertise in ICE candidates; set --node-ip")
	}
	var out []string
	for i, ip := range ips {
		// Type preference 126 (host), local preference by order, component 1.
		prio := uint32(126)<<24 | uint32(65535-i)<<8 | 255
		out = append(out, fmt.Sprintf("%d 1 udp %d %s %d typ host generation 0", 1+i, prio, ip, ua.Port))
	}
	if tcp != nil {
		port := tcp.Addr().(*net.TCPAddr).Port
		for i, ip := range ips {
			// RFC 6544 §4.2: UDP preferred over TCP; passive direction.
			prio := uint32(90)<<24 | uint32(65535-i)<<8 | 255
			out = append(out, fmt.Sprintf("%d 1 tcp %d %s %d typ host tcptype passive generation 0", 100+i, prio, ip, port))
		}
	}
	return out, nil
}

// addPeer registers a new session under its ICE ufrag.
func (e *Engine) addPeer(p *Peer) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.peers[p] = struct{}{}
	e.ufrags[p.ice.local.ufrag] = p
	e.counter.peers.Add(1)
	return nil
}

// addUfrag registers a session's new local ufrag (an ICE restart).
func (e *Engine) addUfrag(p *Peer, ufrag string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.peers[p]; ok {
		e.ufrags[ufrag] = p
	}
}

// removePeer forgets a closed session.
func (e *Engine) removePeer(p *Peer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.peers[p]; !ok {
		return
	}
	delete(e.peers, p)
	for u, q := range e.ufrags {
		if q == p {
			delete(e.ufrags, u)
		}
	}
	e.counter.peers.Add(-1)
}

// peerForCheck finds the session a STUN binding request names by its
// USERNAME (local ufrag first, RFC 8445 §7.2.2).
func (e *Engine) peerForCheck(b []byte) *Peer {
	var m stun.Message
	m.Raw = append(m.Raw[:0], b...)
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return nil
	}
	ufrag, ok := usernameOf(&m)
	if !ok {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ufrags[ufrag]
}

// runClock runs every session's timers each tick until the Engine closes.
func (e *Engine) runClock(s *sender) {
	t := time.NewTicker(clockTick)
	defer t.Stop()
	var peers []*Peer
	for {
		select {
		case <-e.done:
			return
		case <-t.C:
		}
		e.mu.Lock()
		peers = peers[:0]
		for p := range e.peers {
			peers = append(peers, p)
		}
		e.mu.Unlock()
		now := time.Now().UnixNano()
		for _, p := range peers {
			p.tick(s, now)
		}
		s.flush()
		clear(peers)
	}
}

// directSender lends a one-slot sender for a write off the readers (a
// keyframe request, a DTLS flight); releaseSender returns it.
func (e *Engine) directSender() *sender   { return e.direct.Get().(*sender) }
func (e *Engine) releaseSender(s *sender) { e.direct.Put(s) }

// Stats returns a snapshot of the Engine's counters: the shared ones and
// the forwarding counters of every live track's layers, summed now.
func (e *Engine) Stats() Stats {
	e.tracksMu.Lock()
	defer e.tracksMu.Unlock()
	s := e.counter.snapshot()
	for t := range e.tracks {
		t.count(&s)
		if t.kind == KindVideo {
			s.VideoTracksIn++
		} else {
			s.AudioTracksIn++
		}
	}
	return s
}

// addTrack registers a track whose layers are being read.
func (e *Engine) addTrack(t *Track) {
	e.tracksMu.Lock()
	e.tracks[t] = struct{}{}
	e.tracksMu.Unlock()
}

// retireTrack folds an ended track's counts into the shared counters.
func (e *Engine) retireTrack(t *Track) {
	e.tracksMu.Lock()
	defer e.tracksMu.Unlock()
	if _, ok := e.tracks[t]; !ok {
		return
	}
	delete(e.tracks, t)
	var s Stats
	t.count(&s)
	e.counter.packetsIn.Add(s.PacketsIn)
	e.counter.bytesIn.Add(s.BytesIn)
	e.counter.packetsOut.Add(s.PacketsOut)
	e.counter.bytesOut.Add(s.BytesOut)
}

// Close stops the readers and the clock and closes the sockets. Peers
// should be closed first.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.done)
	var errs []error
	if e.tcp != nil {
		errs = append(errs, e.tcp.Close())
	}
	for _, l := range e.loops {
		errs = append(errs, l.conn.Close())
	}
	e.wg.Wait()
	return errors.Join(errs...)
}
