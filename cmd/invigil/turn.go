package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/invigil/invigil/internal/pionlog"
	"github.com/invigil/invigil/metrics"
	"github.com/invigil/invigil/signaling"
	"github.com/invigil/invigil/turn"
)

// turnNode is the embedded TURN server as serve runs it, or only the
// credentials and URLs for an external one.
type turnNode struct {
	srv     *turn.Server // nil when the embedded server is off
	secret  []byte
	urls    []string
	udpAddr string // where it listens, for the log line
}

// startTURN starts the embedded STUN/TURN server (unless --turn-udp-port
// is 0) and works out the iceServers every client is handed.
func startTURN(cfg serveConfig, bindIP net.IP, media []netip.AddrPort, deny []netip.AddrPort, denied func(identity string) bool, public string, log *slog.Logger) (*turnNode, error) {
	n := &turnNode{secret: []byte(cfg.turnSecret), urls: splitList(cfg.turnURLs)}
	if cfg.turnUDPPort == 0 {
		return n, nil
	}
	relayIP := net.ParseIP(cfg.nodeIP)
	if relayIP == nil {
		relayIP = hostIP()
	}
	host := ""
	if bindIP != nil {
		host = bindIP.String()
	}
	port := strconv.Itoa(cfg.turnUDPPort)
	udp, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("turn udp port: %w", err)
	}
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("turn tcp port: %w", err)
	}
	var tlsLn net.Listener
	tlsPort := 0
	if cfg.turnCert != "" && cfg.turnTLSPort != 0 {
		if tlsLn, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(cfg.turnTLSPort))); err != nil {
			udp.Close()
			tcp.Close()
			return nil, fmt.Errorf("turn tls port: %w", err)
		}
		tlsPort = cfg.turnTLSPort
	}
	allow, _ := parsePrefixes(cfg.turnAllowPeers)
	var bindRelay net.IP
	if bindIP == nil && !hostOwns(relayIP) {
		bindRelay = net.IPv4zero // 1:1 NAT: advertise relayIP, bind the wildcard
	}
	n.srv, err = turn.New(turn.Config{
		UDP: udp, TCP: tcp, TLS: tlsLn, CertFile: cfg.turnCert, KeyFile: cfg.turnKey,
		Secret:                n.secret,
		RelayIP:               relayIP,
		RelayBindIP:           bindRelay,
		AllowPeers:            allow,
		MediaAddrs:            media,
		DenyAddrs:             deny,
		MaxAllocationsPerUser: cfg.turnQuota,
		MaxBitsPerSecond:      cfg.turnBitrate,
		Deny:                  denied,
		Logger:                log.With("component", "turn"),
		PionLogs:              pionlog.New(log.With("component", "turn"), pionlog.Relay, time.Second),
	})
	if err != nil {
		return nil, err
	}
	n.udpAddr = udp.LocalAddr().String()
	if len(n.urls) == 0 {
		h := relayIP.String()
		if u, err := url.Parse(public); err == nil && u.Hostname() != "" && cfg.publicURL != "" {
			h = u.Hostname() // TURNS needs the name on the certificate
		}
		n.urls = turn.URLs(h, udp.LocalAddr().(*net.UDPAddr).Port, tlsPort)
	}
	return n, nil
}

// watchHUP registers for SIGHUP and returns the loop that reloads the
// TURNS certificate on each one until its context ends; nil when the
// embedded server is off.
func (n *turnNode) watchHUP(log *slog.Logger) func(ctx context.Context) {
	if n.srv == nil {
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func(ctx context.Context) {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := n.srv.Reload(); err != nil {
					log.Error("turn certificate reload failed; the old one stays in use", "err", err)
				} else {
					log.Info("turn certificate reloaded")
				}
			}
		}
	}
}

// iceServers hands a client STUN/TURN with REST credentials valid as
// long as its token.
func (n *turnNode) iceServers(identity string, expires time.Time) []signaling.ICEServer {
	if len(n.urls) == 0 {
		return nil
	}
	user, pass := turn.Credentials(n.secret, identity, expires)
	return []signaling.ICEServer{{URLs: n.urls, Username: user, Credential: pass}}
}

// stats reports the embedded server for metrics.
func (n *turnNode) stats() metrics.TURNStats {
	if n.srv == nil {
		return metrics.TURNStats{}
	}
	s := n.srv.Stats()
	out := metrics.TURNStats{Allocations: s.Allocations, RelayedBytes: s.RelayedBytes, Refused: map[string]uint64{}, CertNotAfter: s.CertNotAfter}
	for r, v := range s.Refused {
		out.Refused[string(r)] = v
	}
	return out
}

func (n *turnNode) Close() error {
	if n.srv == nil {
		return nil
	}
	return n.srv.Close()
}

// parsePrefixes parses a comma-separated CIDR list.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range splitList(s) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, err
		}
		out = append(out, pfx)
	}
	return out, nil
}

// hostIP is the first global unicast IPv4 address of the host, the relay
// address when --node-ip is not given.
func hostIP() net.IP {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP
		}
	}
	return net.IPv4(127, 0, 0, 1)
}

// addrPort turns a listener address into a netip.AddrPort.
func addrPort(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
