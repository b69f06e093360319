package sfu

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/stun/v4"
)

// ICE-lite (RFC 8445 §2.5): the node has public host candidates on its one
// UDP port and one ICE-TCP port, so it never gathers or checks; the
// browser, the controlling agent, checks the node's candidates and
// nominates one pair. The node answers each check (§7.3), learns the
// client's address from it (a peer-reflexive candidate), and sends media
// only to an address that passed a check with the session's credentials.

const (
	// consentTimeout is how long the node keeps sending without fresh
	// consent (RFC 7675 §5.1: 30 s): a valid check from the client, or a
	// response to one of the node's own.
	consentTimeout = 30 * time.Second
	// consentInterval is how often the node sends its own check on the
	// selected path (RFC 7675 §5.1 says every 5 s, randomised ±20%):
	// consent that the client still wants media, and a round-trip time.
	consentInterval = 5 * time.Second
	// maxRemoteCandidates bounds the client's trickled candidates a
	// session keeps (for their types): a browser sends a few per interface.
	maxRemoteCandidates = 64
)

// iceCreds are one side's ICE credentials (RFC 8445 §5.3).
type iceCreds struct {
	ufrag, pwd string
}

// newCreds makes local credentials: a 16-character ufrag and a
// 32-character password of ice-chars, above the 24 and 128 bits the RFC
// requires.
func newCreds() iceCreds {
	return iceCreds{ufrag: randomICEString(16), pwd: randomICEString(32)}
}

const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func randomICEString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = iceChars[int(b[i])%len(iceChars)]
	}
	return string(b)
}

// path is where a session's packets go: a UDP address, or an ICE-TCP
// connection. It is immutable; a session's selected path is swapped whole.
type path struct {
	addr netip.AddrPort // the client's address (UDP), or the TCP peer's
	tcp  *tcpConn       // non-nil for ICE-TCP (RFC 6544)
}

// remoteCandidate is one of the client's candidates, kept for its type.
type remoteCandidate struct {
	addr netip.AddrPort
	typ  string
}

// iceAgent is a session's ICE-lite state. Its mutex is taken for each
// STUN message and for negotiation, never per media packet.
type iceAgent struct {
	// mu guards the fields below.
	mu         sync.Mutex
	local      iceCreds
	prev       iceCreds // before an ICE restart, answered until the new ones are used
	remote     iceCreds
	candidates []remoteCandidate
	tieBreaker uint64
	check      pendingCheck // the node's outstanding consent check

	lastConsent atomic.Int64 // unix nanos of the last fresh consent on the selected path
	rtt         atomic.Int64 // nanoseconds, from the node's own checks; 0 before the first
}

// pendingCheck is the node's last consent check, until its response.
type pendingCheck struct {
	id     [stun.TransactionIDSize]byte
	sentAt int64
	to     netip.AddrPort
}

func newICEAgent() *iceAgent {
	var tb [8]byte
	_, _ = rand.Read(tb[:])
	return &iceAgent{local: newCreds(), tieBreaker: binary.BigEndian.Uint64(tb[:])}
}

// localCreds returns the credentials the node puts in its SDP.
func (a *iceAgent) localCreds() iceCreds {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.local
}

// setRemote takes the client's credentials from its SDP. New ones in an
// offer are an ICE restart (RFC 8445 §9): the node answers with new
// credentials of its own, and keeps answering checks with the old ones
// until a check with the new ones arrives.
func (a *iceAgent) setRemote(c iceCreds, offer bool) (restart bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.remote.ufrag != "" && c.ufrag != a.remote.ufrag {
		restart = offer
		if offer {
			a.prev, a.local = a.local, newCreds()
		}
	}
	a.remote = c
	return restart
}

// errStunAuth is a check with wrong credentials; it is not answered
// (RFC 8489 §9.1.3 would answer 401; a lite server need not, and silence
// tells a scanner nothing).
var errStunAuth = errors.New("sfu: STUN check failed authentication")

// usernameOf returns the local ufrag a check names: USERNAME is
// "local:remote" from the node's side (RFC 8445 §7.2.2).
func usernameOf(m *stun.Message) (string, bool) {
	u, err := m.Get(stun.AttrUsername)
	if err != nil {
		return "", false
	}
	local, _, ok := strings.Cut(string(u), ":")
	return local, ok
}

// answer handles a binding request from addr and returns the response to
// send, and whether the request nominates addr (USE-CANDIDATE). The
// request's integrity is checked against whichever of the node's current
// or previous credentials its USERNAME names.
func (a *iceAgent) answer(m *stun.Message, addr netip.AddrPort) (resp []byte, nominate bool, err error) {
	local, ok := usernameOf(m)
	if !ok {
		return nil, false, errStunAuth
	}
	a.mu.Lock()
	creds := a.local
	if local == a.prev.ufrag && a.prev.ufrag != "" {
		creds = a.prev
	} else if local != a.local.ufrag {
		a.mu.Unlock()
		return nil, false, errStunAuth
	}
	if creds == a.local && a.prev.ufrag != "" {
		a.prev = iceCreds{} // the restart is done: the client uses the new credentials
	}
	a.mu.Unlock()
	if stun.NewShortTermIntegrity(creds.pwd).Check(m) != nil {
		return nil, false, errStunAuth
	}
	if m.Contains(stun.AttrFingerprint) && stun.Fingerprint.Check(m) != nil {
		return nil, false, errStunAuth
	}
	ip := addr.Addr().AsSlice()
	resp, err = buildMessage(
		stun.NewType(stun.MethodBinding, stun.ClassSuccessResponse),
		stun.NewTransactionIDSetter(m.TransactionID),
		&stun.XORMappedAddress{IP: net.IP(ip), Port: int(addr.Port())},
		stun.NewShortTermIntegrity(creds.pwd),
		stun.Fingerprint,
	)
	return resp, m.Contains(stun.AttrUseCandidate), err
}

// consentCheck builds the node's own binding request to addr (RFC 7675
// §5.1): authenticated with the client's credentials, so a response is
// both fresh consent and a round-trip time. It returns nil until the
// client's credentials are known.
func (a *iceAgent) consentCheck(addr netip.AddrPort, now time.Time) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.remote.ufrag == "" {
		return nil
	}
	var id [stun.TransactionIDSize]byte
	_, _ = rand.Read(id[:])
	var prio, tie [8]byte
	// A peer-reflexive candidate's priority (RFC 8445 §5.1.2.1).
	binary.BigEndian.PutUint32(prio[:4], 110<<24|65535<<8|255)
	binary.BigEndian.PutUint64(tie[:], a.tieBreaker)
	b, err := buildMessage(
		stun.BindingRequest,
		stun.NewTransactionIDSetter(id),
		stun.NewUsername(a.remote.ufrag+":"+a.local.ufrag),
		stun.RawAttribute{Type: stun.AttrPriority, Value: prio[:4]},
		stun.RawAttribute{Type: stun.AttrICEControlled, Value: tie[:]},
		stun.NewShortTermIntegrity(a.remote.pwd),
		stun.Fingerprint,
	)
	if err != nil {
		return nil
	}
	a.check = pendingCheck{id: id, sentAt: now.UnixNano(), to: addr}
	return b
}

// response handles a binding response: the answer to the node's consent
// check refreshes consent and gives a round-trip time.
func (a *iceAgent) response(m *stun.Message, addr netip.AddrPort, now time.Time) bool {
	a.mu.Lock()
	c := a.check
	pwd := a.remote.pwd
	a.mu.Unlock()
	if c.sentAt == 0 || m.TransactionID != c.id || addr != c.to {
		return false
	}
	if stun.NewShortTermIntegrity(pwd).Check(m) != nil {
		return false
	}
	a.mu.Lock()
	if a.check.id == c.id {
		a.check = pendingCheck{}
	}
	a.mu.Unlock()
	a.rtt.Store(now.UnixNano() - c.sentAt)
	a.lastConsent.Store(now.UnixNano())
	return true
}

// addCandidate keeps a client's trickled candidate (for its type); a
// malformed one is an error. mDNS names (.local) cannot be matched to an
// address and are ignored, as the browser's checks reveal the address.
func (a *iceAgent) addCandidate(s string) error {
	c, err := ice.UnmarshalCandidate(s)
	if err != nil {
		return fmt.Errorf("sfu: parse candidate: %w", err)
	}
	ip, err := netip.ParseAddr(c.Address())
	if err != nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.candidates) < maxRemoteCandidates {
		a.candidates = append(a.candidates, remoteCandidate{addr: netip.AddrPortFrom(ip.Unmap(), uint16(c.Port())), typ: c.Type().String()})
	}
	return nil
}

// candidateType is the type of the client's candidate at addr: what the
// client signalled for it, else prflx (learnt from its check).
func (a *iceAgent) candidateType(addr netip.AddrPort) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.candidates {
		if c.addr == addr {
			return c.typ
		}
	}
	return "prflx"
}

// buildMessage encodes a STUN message.
func buildMessage(setters ...stun.Setter) ([]byte, error) {
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, fmt.Errorf("sfu: build STUN message: %w", err)
	}
	return m.Raw, nil
}

// packetKind classifies a datagram by its first byte (RFC 7983 §7).
type packetKind uint8

const (
	kindUnknown packetKind = iota
	kindSTUN
	kindDTLS
	kindRTP
	kindRTCP
)

func classify(b []byte) packetKind {
	if len(b) == 0 {
		return kindUnknown
	}
	switch c := b[0]; {
	case c <= 3:
		return kindSTUN
	case c >= 20 && c <= 63:
		return kindDTLS
	case c >= 128 && c <= 191:
		// RTP and RTCP share the port (RFC 5761 §4): RTCP packet types
		// 192–223 sit where an RTP marker bit and payload type would.
		if len(b) > 1 && b[1] >= 192 && b[1] <= 223 {
			return kindRTCP
		}
		return kindRTP
	}
	return kindUnknown
}
