package turn

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v5"
)

// closeTimeout bounds how long Close waits for pion's goroutines and the
// relay sockets to finish after their sockets are closed.
const closeTimeout = 5 * time.Second

// Server is the embedded STUN/TURN server (RFC 8489 Binding, RFC 8656
// TURN, RFC 6062 TCP relays). Create it with New. Its methods are safe for
// concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pion    *pionturn.Server
	policy  *peerPolicy
	relays  *relays
	codes   *codeFixer
	refused refusals
	certs   *certStore    // nil without TLS
	track   *tracker      // what Close waits for
	closing chan struct{} // closed when Close starts

	listeners []*listener // client-facing TCP and TLS listeners
	closeOnce sync.Once
	closeErr  error
}

// New starts serving STUN and TURN on cfg's listeners. The Server owns
// them from then on, also when New fails.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		closeListeners(&cfg)
		return nil, err
	}
	cfg = cfg.withDefaults()
	cfg.Secret = bytes.Clone(cfg.Secret)
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		policy:  newPeerPolicy(&cfg),
		relays:  newRelays(cfg.MaxAllocationsPerUser),
		codes:   newCodeFixer(),
		track:   newTracker(),
		closing: make(chan struct{}),
	}
	s.refused.log = cfg.Logger
	var tlsConfig *tls.Config
	if cfg.TLS != nil {
		certs, err := newCertStore(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			closeListeners(&cfg)
			return nil, err
		}
		s.certs = certs
		tlsConfig = certs.tlsConfig()
	}

	gen := relayGen{s: s}
	pc := pionturn.ServerConfig{
		Realm:         cfg.Realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		LoggerFactory: cfg.PionLogs,
		EventHandler: pionturn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
		},
	}
	if cfg.UDP != nil {
		pc.PacketConnConfigs = append(pc.PacketConnConfigs, pionturn.PacketConnConfig{
			PacketConn: newPacketConn(cfg.UDP, s), RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	for _, l := range []struct {
		ln  net.Listener
		tls *tls.Config
	}{{cfg.TCP, nil}, {cfg.TLS, tlsConfig}} {
		if l.ln == nil {
			continue
		}
		wl := newListener(l.ln, l.tls, s)
		s.listeners = append(s.listeners, wl)
		pc.ListenerConfigs = append(pc.ListenerConfigs, pionturn.ListenerConfig{
			Listener: wl, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	srv, err := pionturn.NewServer(pc)
	if err != nil {
		close(s.closing)
		closeListeners(&cfg)
		return nil, fmt.Errorf("turn: start: %w", err)
	}
	s.pion = srv
	if s.certs != nil && cfg.CertPollInterval > 0 {
		s.track.add()
		go s.pollCerts()
	}
	s.log.Info("turn started", s.startAttrs()...)
	return s, nil
}

func closeListeners(cfg *Config) {
	for _, c := range []interface{ Close() error }{cfg.UDP, cfg.TCP, cfg.TLS} {
		if c != nil {
			_ = c.Close()
		}
	}
}

func (s *Server) startAttrs() []any {
	attrs := []any{"realm", s.cfg.Realm, "relay_ip", s.cfg.RelayIP.String()}
	if s.cfg.UDP != nil {
		attrs = append(attrs, "udp_addr", s.cfg.UDP.LocalAddr().String())
	}
	if s.cfg.TCP != nil {
		attrs = append(attrs, "tcp_addr", s.cfg.TCP.Addr().String())
	}
	if s.cfg.TLS != nil {
		attrs = append(attrs, "tls_addr", s.cfg.TLS.Addr().String(), "cert_not_after", s.certs.notAfter())
	}
	return append(attrs,
		"allow_peers", fmt.Sprint(s.cfg.AllowPeers),
		"max_allocations_per_user", s.cfg.MaxAllocationsPerUser,
		"max_bits_per_second", s.cfg.MaxBitsPerSecond)
}

// Close stops serving: it closes the listeners, every client connection
// and every allocation, and waits for pion's goroutines and the relay
// sockets to finish (at most closeTimeout, then ErrCloseTimeout). Later
// calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		var errs []error
		if err := s.pion.Close(); err != nil {
			errs = append(errs, err)
		}
		for _, l := range s.listeners {
			l.closeConns()
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.track.wait(ctx); err != nil {
			errs = append(errs, ErrCloseTimeout)
		}
		s.closeErr = errors.Join(errs...)
		s.log.Info("turn stopped", "err", s.closeErr)
	})
	return s.closeErr
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Allocations:  s.pion.AllocationCount(),
		RelayedBytes: s.relays.relayedBytes(),
		Refused:      s.refused.snapshot(),
	}
	if s.certs != nil {
		st.CertNotAfter = s.certs.notAfter()
	}
	return st
}

// authenticate is pion's AuthHandler (RFC 8656 §5, RFC 8489 §9.2): it
// checks the REST username and returns the identity, which quotas are
// counted by, and the key MESSAGE-INTEGRITY must verify with. pion
// answers a refusal with 401 and a fresh NONCE.
func (s *Server) authenticate(ra *pionturn.RequestAttributes) (userID string, key []byte, ok bool) {
	identity, key, err := checkUsername(s.cfg.Secret, s.cfg.Realm, ra.Username, time.Now())
	if err != nil {
		r := refBadCredentials
		if errors.Is(err, ErrExpired) {
			r = refExpired
		}
		s.refuse(r, func() []slog.Attr {
			return []slog.Attr{
				slog.String("client", addrString(ra.SrcAddr)), slog.String("username", ra.Username),
				slog.String("method", ra.Method.String()), slog.String("err", err.Error()),
			}
		})
		return "", nil, false
	}
	if s.cfg.Deny != nil && s.cfg.Deny(identity) {
		s.refuse(refDenied, func() []slog.Attr {
			return []slog.Attr{
				slog.String("client", addrString(ra.SrcAddr)), slog.String("user", identity),
				slog.String("method", ra.Method.String()),
			}
		})
		return "", nil, false
	}
	s.codes.authenticated(ra.SrcAddr, key)
	return identity, key, true
}

// onAuth counts requests whose MESSAGE-INTEGRITY did not verify: a wrong
// secret, or a password that is not the username's.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.refuse(refBadCredentials, func() []slog.Attr {
		return []slog.Attr{
			slog.String("client", addrString(src)), slog.String("username", username),
			slog.String("method", method), slog.String("err", "message integrity check failed"),
		}
	})
}

// quota is pion's QuotaHandler (RFC 8656 §7.2 step 10, 486).
func (s *Server) quota(userID, _ string, src net.Addr) bool {
	if s.relays.underQuota(userID) {
		return true
	}
	s.refuse(refQuota, func() []slog.Attr {
		return []slog.Attr{
			slog.String("client", addrString(src)), slog.String("user", userID),
			slog.Int("max_allocations_per_user", s.cfg.MaxAllocationsPerUser),
		}
	})
	return false
}

// permit is pion's PermissionHandler, consulted by CreatePermission,
// ChannelBind and Connect (RFC 8656 §9.1, §12; RFC 6062 §5.2).
func (s *Server) permit(client net.Addr, peerIP net.IP) bool {
	ip, _ := netip.AddrFromSlice(peerIP)
	class := s.policy.checkIP(ip)
	if class == "" {
		return true
	}
	s.codes.refusedPeer(addrKey(client))
	s.refusePeer("client", addrString(client), netip.AddrPortFrom(ip, 0), class)
	return false
}

// onAllocationCreated ties a relay to its client, so a Connect refused
// when dialing can be answered 403 (see codeFixer).
func (s *Server) onAllocationCreated(src, _ net.Addr, _, _, _ string, relay net.Addr, _ int) {
	if a := s.relays.lookup(relay); a != nil {
		k := addrKey(src)
		a.client.Store(&k)
	}
}

func (s *Server) refuse(r refusal, attrs func() []slog.Attr) {
	s.refused.refuse(r, attrs)
}

// refusePeer counts and logs a peer the policy refused; whoKey is "client"
// (a request, who its address) or "user" (the data path, who the
// identity). A peer with port 0 is an IP refused a permission. The line is
// built only when logged, so a refused datagram allocates nothing.
func (s *Server) refusePeer(whoKey, who string, peer netip.AddrPort, class string) {
	s.refuse(refForbiddenPeer, func() []slog.Attr {
		p := peer.String()
		if peer.Port() == 0 {
			p = peer.Addr().String()
		}
		return []slog.Attr{slog.String(whoKey, who), slog.String("peer", p), slog.String("peer_class", class)}
	})
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
