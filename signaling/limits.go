package signaling

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Abuse limits (docs/security.md). The defaults let a school behind one
// NAT address bring a whole exam hall (hundreds of students joining within
// a minute) while one hostile host cannot hold more than a bounded share
// of the node.
const (
	// DefaultMaxConnsPerIP bounds open WebSockets from one address.
	DefaultMaxConnsPerIP = 200
	// DefaultConnRatePerIP and DefaultConnBurstPerIP bound new
	// connections per second from one address: a hall of 300 joining in a
	// minute is 5/s; the burst absorbs the top of the hour.
	DefaultConnRatePerIP  = 20
	DefaultConnBurstPerIP = 100
	// DefaultMsgRate and DefaultMsgBurst bound messages per second on one
	// connection: negotiation and a proctor's scrolling are a few per
	// second; trickle ICE bursts a dozen.
	DefaultMsgRate  = 20
	DefaultMsgBurst = 60
	// DefaultMsgRatePerIP and DefaultMsgBurstPerIP bound messages per
	// second from one address, all its connections together, so opening
	// many connections does not multiply the per-connection rate: a hall
	// of 300 behind one NAT sends a few a second each while joining.
	DefaultMsgRatePerIP  = 1000
	DefaultMsgBurstPerIP = 3000
	// DefaultMaxCandidates bounds the ICE candidates one session may
	// trickle: a browser sends a handful per interface and transport.
	DefaultMaxCandidates = 100
	// DefaultMaxTracks bounds what one participant publishes: camera,
	// microphone, screen, and a second camera.
	DefaultMaxTracks = 4
	// limiterIdle is how long a quiet address's state is kept.
	limiterIdle = time.Minute
)

// Limits are the per-address and per-session abuse limits.
type Limits struct {
	MaxConnsPerIP  int
	ConnRatePerIP  float64
	ConnBurstPerIP int
	MsgRate        float64
	MsgBurst       int
	MsgRatePerIP   float64
	MsgBurstPerIP  int
	MaxCandidates  int
	MaxTracks      int
}

func (l Limits) withDefaults() Limits {
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if l.ConnRatePerIP == 0 {
		l.ConnRatePerIP = DefaultConnRatePerIP
	}
	if l.ConnBurstPerIP == 0 {
		l.ConnBurstPerIP = DefaultConnBurstPerIP
	}
	if l.MsgRate == 0 {
		l.MsgRate = DefaultMsgRate
	}
	if l.MsgBurst == 0 {
		l.MsgBurst = DefaultMsgBurst
	}
	if l.MsgRatePerIP == 0 {
		l.MsgRatePerIP = DefaultMsgRatePerIP
	}
	if l.MsgBurstPerIP == 0 {
		l.MsgBurstPerIP = DefaultMsgBurstPerIP
	}
	if l.MaxCandidates == 0 {
		l.MaxCandidates = DefaultMaxCandidates
	}
	if l.MaxTracks == 0 {
		l.MaxTracks = DefaultMaxTracks
	}
	return l
}

// addrLimits tracks connections per client address.
type addrLimits struct {
	limits Limits

	// mu guards addrs.
	mu    sync.Mutex
	addrs map[netip.Addr]*addrState
}

type addrState struct {
	open int
	rate *rate.Limiter // new connections
	msgs *rate.Limiter // messages on all the address's connections
	seen time.Time
}

func newAddrLimits(l Limits) *addrLimits {
	return &addrLimits{limits: l, addrs: make(map[netip.Addr]*addrState)}
}

// clientAddr is the address a request came from. Behind a load balancer
// this is the balancer's: run it with PROXY protocol or per-client
// limits off (docs/security.md).
func clientAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// admit reserves a connection slot for addr, or says why not. It returns
// the address's message limiter, which the connection shares with the
// address's others (safe for concurrent use).
func (a *addrLimits) admit(addr netip.Addr, now time.Time) (msgs *rate.Limiter, reason string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.addrs[addr]
	if st == nil {
		a.sweepLocked(now)
		st = &addrState{
			rate: rate.NewLimiter(rate.Limit(a.limits.ConnRatePerIP), a.limits.ConnBurstPerIP),
			msgs: rate.NewLimiter(rate.Limit(a.limits.MsgRatePerIP), a.limits.MsgBurstPerIP),
		}
		a.addrs[addr] = st
	}
	st.seen = now
	if st.open >= a.limits.MaxConnsPerIP {
		return nil, "connections_per_ip", false
	}
	if !st.rate.AllowN(now, 1) {
		return nil, "connection_rate", false
	}
	st.open++
	return st.msgs, "", true
}

// release frees addr's slot.
func (a *addrLimits) release(addr netip.Addr, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.addrs[addr]; st != nil {
		st.open--
		st.seen = now
	}
}

// sweepLocked forgets addresses with nothing open that were quiet for
// limiterIdle, so the map does not grow with every address ever seen.
func (a *addrLimits) sweepLocked(now time.Time) {
	if len(a.addrs) < 1024 {
		return
	}
	for addr, st := range a.addrs {
		if st.open == 0 && now.Sub(st.seen) > limiterIdle {
			delete(a.addrs, addr)
		}
	}
}
