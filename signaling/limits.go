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
	rate *rate.Limiter
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

// admit reserves a connection slot for addr, or says why not.
func (a *addrLimits) admit(addr netip.Addr, now time.Time) (reason string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.addrs[addr]
	if st == nil {
		a.sweepLocked(now)
		st = &addrState{rate: rate.NewLimiter(rate.Limit(a.limits.ConnRatePerIP), a.limits.ConnBurstPerIP)}
		a.addrs[addr] = st
	}
	st.seen = now
	if st.open >= a.limits.MaxConnsPerIP {
		return "connections_per_ip", false
	}
	if !st.rate.AllowN(now, 1) {
		return "connection_rate", false
	}
	st.open++
	return "", true
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
