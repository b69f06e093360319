package turn

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pion/logging"
)

const (
	// DefaultRealm is the REALM (RFC 8489 §14.9) sent when Config.Realm is
	// empty. REST credentials do not depend on it, so any value works with
	// every client.
	DefaultRealm = "invigil"

	// DefaultMaxAllocationsPerUser bounds one identity's live allocations.
	// A browser allocates once per TURN URL per local interface for each
	// PeerConnection: a student with camera and screen PeerConnections and
	// the four URLs Invigil hands out (turn udp, turn tcp, turns, stun)
	// needs 8 on one interface, and a reconnect overlaps the old ones until
	// they expire. 16 covers that with room; a script hoarding relays
	// does not get far.
	DefaultMaxAllocationsPerUser = 16

	// DefaultMaxBitsPerSecond caps each direction of one allocation. The
	// heaviest relayed client is a proctor: 25 students' low layers
	// (~150 kb/s) and audio (~32 kb/s) plus one focused high layer
	// (~500 kb/s) is ~5.1 Mb/s of payload before RTP, SRTP and TURN
	// framing, retransmissions and keyframe bursts. 10 Mb/s leaves that
	// headroom and still stops one relay from saturating a node.
	DefaultMaxBitsPerSecond = 10_000_000

	// DefaultCertPollInterval is how often the certificate files are checked
	// for changes (modification time and size). Certificates are renewed
	// days before expiry, so a few seconds of delay costs nothing.
	DefaultCertPollInterval = 10 * time.Second
)

// Config configures a Server. The listeners are opened by the caller (cmd,
// or a test on 127.0.0.1:0) and owned by the Server from New on: Close
// closes them.
type Config struct {
	// UDP serves STUN and TURN over UDP (RFC 8656 §3.1): --turn-udp-port.
	UDP net.PacketConn
	// TCP serves STUN and TURN over TCP on the same port number as UDP.
	TCP net.Listener
	// TLS is a plain TCP listener for TURN over TLS (RFC 8656 §3.1,
	// "turns:"): --turn-tls-port. The Server wraps it with TLS using
	// CertFile and KeyFile. Nil turns TURNS off.
	TLS net.Listener
	// CertFile and KeyFile are PEM files for TLS. They are re-read by
	// Reload (cmd calls it on SIGHUP) and when their modification time or
	// size changes; live connections and allocations are not dropped.
	CertFile, KeyFile string
	// CertPollInterval is how often CertFile and KeyFile are checked for
	// changes. Zero means DefaultCertPollInterval; negative turns polling
	// off (Reload still works).
	CertPollInterval time.Duration

	// Secret is the TURN REST API shared secret (coturn's
	// static-auth-secret); see Credentials.
	Secret []byte
	// Realm is the REALM attribute value; empty means DefaultRealm.
	Realm string

	// RelayIP is the address relays are advertised at
	// (XOR-RELAYED-ADDRESS) and, unless RelayBindIP is set, bound to.
	RelayIP net.IP
	// RelayBindIP is the local address relay sockets bind to when it
	// differs from RelayIP, as behind a cloud provider's 1:1 NAT where
	// the public address is not on any interface. Nil means RelayIP.
	RelayBindIP net.IP

	// AllowPeers are ranges a relay may reach although the peer policy
	// would refuse them (private, loopback, …): --turn-allow-peers.
	// DenyAddrs still win over AllowPeers.
	AllowPeers []netip.Prefix
	// MediaAddrs are the node's own advertised media addresses (node IP
	// with the RTC UDP and TCP ports). They are always allowed, whatever
	// range they are in: reaching the SFU is what the relay is for.
	MediaAddrs []netip.AddrPort
	// DenyAddrs are the node's own non-media listeners (HTTP, admin,
	// agent-check). They are always refused unless also in MediaAddrs. An
	// unspecified IP (0.0.0.0:7880, [::]:7880) refuses that port on every
	// address, which is what a listener bound to the wildcard needs. The
	// TURN listeners' own addresses are added by New.
	DenyAddrs []netip.AddrPort

	// MaxAllocationsPerUser is the per-identity allocation quota (RFC 8656
	// §7.2, 486). Zero means DefaultMaxAllocationsPerUser; negative means
	// unlimited.
	MaxAllocationsPerUser int
	// MaxBitsPerSecond caps each direction of each allocation's relayed
	// traffic. UDP datagrams over the cap are dropped; TCP relays (RFC 6062)
	// are paced. Zero means DefaultMaxBitsPerSecond; negative means
	// unlimited.
	MaxBitsPerSecond int
	// Deny, if set, refuses identities whose REST credentials are
	// otherwise valid (the exam platform revoked them): every request
	// that authenticates (Allocate, Refresh, CreatePermission,
	// ChannelBind, Connect) is answered 401. It is called per such
	// request and must answer from memory.
	Deny func(identity string) bool

	// Logger receives the server's lines; nil discards them.
	Logger *slog.Logger
	// PionLogs receives pion/turn's own lines (cmd passes an
	// internal/pionlog factory with its Relay levels: pion/turn logs per
	// datagram at Debug and Info); nil discards them.
	PionLogs logging.LoggerFactory
}

// Validate reports the first problem with c, without opening anything.
func (c *Config) Validate() error {
	if c.UDP == nil && c.TCP == nil && c.TLS == nil {
		return ErrNoListener
	}
	if len(c.Secret) == 0 {
		return ErrNoSecret
	}
	if c.RelayIP == nil || c.RelayIP.IsUnspecified() {
		return ErrNoRelayIP
	}
	if (c.TLS != nil) != (c.CertFile != "" && c.KeyFile != "") || (c.CertFile == "") != (c.KeyFile == "") {
		return ErrTLSConfig
	}
	if c.RelayBindIP != nil {
		if (c.RelayBindIP.To4() == nil) != (c.RelayIP.To4() == nil) {
			return fmt.Errorf("%w: relay bind IP %s and relay IP %s differ in family", ErrInvalidAddr, c.RelayBindIP, c.RelayIP)
		}
	}
	for _, p := range c.AllowPeers {
		if !p.IsValid() {
			return fmt.Errorf("%w: allow-peers entry %v", ErrInvalidAddr, p)
		}
	}
	for _, a := range c.MediaAddrs {
		if !a.IsValid() || a.Addr().Unmap().IsUnspecified() || a.Port() == 0 {
			return fmt.Errorf("%w: media address %v must be a specific IP and port", ErrInvalidAddr, a)
		}
	}
	for _, a := range c.DenyAddrs {
		if !a.IsValid() || a.Port() == 0 {
			return fmt.Errorf("%w: deny address %v", ErrInvalidAddr, a)
		}
	}
	return nil
}

// withDefaults returns c with zero values replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.MaxAllocationsPerUser == 0 {
		c.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if c.MaxBitsPerSecond == 0 {
		c.MaxBitsPerSecond = DefaultMaxBitsPerSecond
	}
	if c.CertPollInterval == 0 {
		c.CertPollInterval = DefaultCertPollInterval
	}
	if c.RelayBindIP == nil {
		c.RelayBindIP = c.RelayIP
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PionLogs == nil {
		c.PionLogs = &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled, ScopeLevels: map[string]logging.LogLevel{}}
	}
	return c
}
