package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

const (
	// devSecret signs tokens in --dev mode only. It is public: a --dev
	// node binds loopback and must never face a network.
	devSecret = "invigil-dev-secret-do-not-use-in-production"
	// minSecretBytes is the shortest API or TURN secret serve accepts
	// outside --dev: HS256 keys shorter than the hash output (32 bytes)
	// weaken it (RFC 7518 §3.2).
	minSecretBytes = 32
	// devRoom is the room of the links --dev prints.
	devRoom = "demo"
	// devTokenTTL keeps --dev links working for a working day.
	devTokenTTL = 12 * time.Hour
)

// serveConfig is serve's resolved configuration.
type serveConfig struct {
	httpAddr           string
	rtcUDPPort         int
	rtcTCPPort         int
	nodeIP             string
	udpBuffer          int
	udpReaders         int
	apiSecret          string
	publicURL          string
	dataDir            string
	dev                bool
	logLevel           string
	logFormat          string
	maxPerRoom         int
	maxPerNode         int
	maxRooms           int
	maxConnsPerIP      int
	connRatePerIP      float64
	connBurstPerIP     int
	messageRate        float64
	messageRateIP      float64
	joinTimeout        time.Duration
	nodeID             string
	redisURL           string
	sentinelAddrs      string // cluster mode through Redis Sentinel (cluster.go)
	sentinelMaster     string
	spoolMaxBytes      int64         // cluster mode: the trail spool's limit (trail.go)
	handoverTimeout    time.Duration // cluster mode: the trail's hand-over wait (trail.go)
	stallAfter         time.Duration
	resumeWindow       time.Duration
	webhookURL         string
	webhookSecret      string
	webhookMaxAttempts int           // the outbox (webhook.go)
	webhookMaxDelay    time.Duration // the outbox (webhook.go)
	turnUDPPort        int
	turnTLSPort        int
	turnCert           string
	turnKey            string
	turnSecret         string
	turnAllowPeers     string
	turnURLs           string
	turnQuota          int
	turnBitrate        int
	emptyTimeout       time.Duration
	allowedOrigins     string
	adminAddr          string
	agentAddr          string
	shutdownTimeout    time.Duration
	rec                recordFlags
	concealFocus       bool // students' uplink never depends on a proctor's attention (docs/recording.md)
	drainTimeout       time.Duration
}

func parseServe(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML file of flag values (keys are flag names)")
	fs.StringVar(&c.httpAddr, "http-addr", ":7880", "HTTP and WebSocket listener")
	fs.IntVar(&c.rtcUDPPort, "rtc-udp-port", 7882, "the one UDP port all PeerConnections share (0: any free port)")
	fs.IntVar(&c.rtcTCPPort, "rtc-tcp-port", 7881, "ICE-TCP fallback port (0: any free port, -1: off)")
	fs.StringVar(&c.nodeIP, "node-ip", "", "IP advertised in ICE candidates (default: the host's addresses)")
	fs.IntVar(&c.turnUDPPort, "turn-udp-port", 3478, "STUN/TURN over UDP and TCP on this port; 0 disables the embedded TURN server")
	fs.IntVar(&c.turnTLSPort, "turn-tls-port", 5349, "TURN over TLS, when --turn-cert and --turn-key are set")
	fs.StringVar(&c.turnCert, "turn-cert", "", "PEM certificate for TURNS (reloaded on SIGHUP and on change)")
	fs.StringVar(&c.turnKey, "turn-key", "", "PEM private key for TURNS")
	fs.StringVar(&c.turnSecret, "turn-secret", "", "shared secret for TURN REST credentials, at least 32 bytes (default: the API secret)")
	fs.StringVar(&c.turnAllowPeers, "turn-allow-peers", "", "comma-separated CIDRs a relay may reach although private or loopback (tests: 127.0.0.0/8)")
	fs.StringVar(&c.turnURLs, "turn-urls", "", "comma-separated STUN/TURN URLs handed to clients instead of this node's (e.g. an external coturn with the same --turn-secret)")
	fs.IntVar(&c.turnQuota, "turn-max-allocations-per-user", 0, "TURN allocations one identity may hold (0: default 16; negative: unlimited)")
	fs.IntVar(&c.turnBitrate, "turn-max-bitrate", 0, "bits per second each TURN allocation may relay in each direction (0: default 10 Mb/s; negative: unlimited)")
	c.rec.register(fs)
	fs.BoolVar(&c.concealFocus, "conceal-focus", false, "students keep every simulcast layer on and get keyframe requests on a fixed cadence, so nothing they receive says whether a proctor focuses them (costs uplink and up to 2 s per focus switch)")
	fs.IntVar(&c.udpBuffer, "rtc-udp-buffer", defaultUDPBuffer, "receive and send buffer, in bytes, asked for on each RTC UDP socket (capped by net.core.rmem_max/wmem_max)")
	fs.IntVar(&c.udpReaders, "rtc-udp-readers", 0, "sockets (and reader goroutines) on the RTC UDP port, SO_REUSEPORT spreading clients over them (0: one per CPU the process may use, at most 8)")
	fs.StringVar(&c.apiSecret, "api-secret", "", "HS256 key for join tokens, at least 32 bytes (required unless --dev)")
	fs.StringVar(&c.publicURL, "public-url", "", "base URL clients use to reach this node (default: derived from --http-addr)")
	fs.StringVar(&c.dataDir, "data-dir", "./data", "audit log and recordings when no Redis")
	fs.DurationVar(&c.resumeWindow, "resume-window", room.DefaultResumeWindow, "how long a student whose connection was lost stays in the room to come back as the same participant (0s: leave at once)")
	fs.DurationVar(&c.stallAfter, "stall-after", room.DefaultStallAfter, "a connected student's camera silent this long is a media_stalled event")
	fs.StringVar(&c.webhookURL, "webhook-url", "", "POST every audit event here (JSON, signed with --webhook-secret over timestamp.body, at least once, in order per room, from a persisted cursor; Idempotency-Key room:seq)")
	fs.StringVar(&c.webhookSecret, "webhook-secret", "", "HMAC-SHA256 key for webhook signatures, at least 32 bytes (required with --webhook-url)")
	webhookFlags(fs, &c)
	fs.StringVar(&c.redisURL, "redis-url", "", "cluster mode: Redis for occupancy, room placement and redirects, e.g. redis://10.0.0.5:6379/0 (empty: this node alone)")
	sentinelFlags(fs, &c)
	trailFlags(fs, &c)
	fs.StringVar(&c.nodeID, "node-id", "", "this node's name in the cluster and in audit events (default: the hostname)")
	fs.BoolVar(&c.dev, "dev", false, "development mode: fixed dev secret, loopback only, prints ready-to-open links")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "text", "text or json")
	fs.IntVar(&c.maxPerRoom, "max-participants-per-room", room.DefaultMaxPerRoom, "participants in one room")
	fs.IntVar(&c.maxPerNode, "max-participants-per-node", room.DefaultMaxPerNode, "participants on this node")
	fs.IntVar(&c.maxRooms, "max-rooms", room.DefaultMaxRooms, "rooms on this node")
	fs.IntVar(&c.maxConnsPerIP, "max-connections-per-ip", signaling.DefaultMaxConnsPerIP, "open signaling connections from one client address")
	fs.Float64Var(&c.connRatePerIP, "connection-rate-per-ip", signaling.DefaultConnRatePerIP, "new signaling connections per second from one client address")
	fs.IntVar(&c.connBurstPerIP, "connection-burst-per-ip", signaling.DefaultConnBurstPerIP, "new connections one client address may open at once beyond the rate")
	fs.Float64Var(&c.messageRate, "message-rate", signaling.DefaultMsgRate, "signaling messages per second one connection may send")
	fs.Float64Var(&c.messageRateIP, "message-rate-per-ip", signaling.DefaultMsgRatePerIP, "signaling messages per second one client address may send on all its connections (burst 3×)")
	fs.DurationVar(&c.joinTimeout, "join-timeout", signaling.DefaultJoinTimeout, "how long a new connection has to send join")
	fs.DurationVar(&c.emptyTimeout, "room-empty-timeout", room.DefaultEmptyTimeout, "how long an empty room is kept")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma-separated Origin hosts allowed besides this server's own (e.g. exam.example.com)")
	fs.StringVar(&c.agentAddr, "agent-addr", "", "HAProxy agent-check listener, e.g. :7883 (empty: off)")
	fs.StringVar(&c.adminAddr, "admin-addr", "", "pprof listener, e.g. :7884 (a missing host means 127.0.0.1; empty: off)")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 0, "on SIGTERM, how long rooms may go on (no new ones) before sessions are closed; a second signal ends it at once")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long shutdown waits for sessions to close")
	if err := fs.Parse(args); err != nil {
		return c, usageErr(err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *configPath == "" {
		*configPath = os.Getenv(envName("config"))
	}
	if err := resolve(fs, *configPath); err != nil {
		return c, err
	}
	if c.nodeID == "" {
		c.nodeID, _ = os.Hostname()
	}
	if c.dev {
		if c.apiSecret == "" {
			c.apiSecret = devSecret
		}
		if c.turnAllowPeers == "" {
			// A dev node's media address is loopback; nothing else is.
			c.turnAllowPeers = "127.0.0.0/8"
		}
		// --dev never faces a network: everything on loopback.
		host, port, err := net.SplitHostPort(c.httpAddr)
		if err != nil {
			return c, fmt.Errorf("--http-addr: %w", err)
		}
		if host == "" || !isLoopback(host) {
			c.httpAddr = net.JoinHostPort("127.0.0.1", port)
		}
		c.nodeIP = "127.0.0.1"
	}
	if c.turnSecret == "" {
		c.turnSecret = c.apiSecret
	}
	return c, c.validate()
}

// resumeWindow maps the flag (0: off) to room.Config (negative: off).
func resumeWindow(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

func (c serveConfig) validate() error {
	switch {
	case c.apiSecret == "":
		return errors.New("--api-secret (or INVIGIL_API_SECRET) is required; use --dev for a local demo")
	case !c.dev && len(c.apiSecret) < minSecretBytes:
		return fmt.Errorf("--api-secret must be at least %d bytes (it is %d)", minSecretBytes, len(c.apiSecret))
	case !c.dev && len(c.turnSecret) < minSecretBytes:
		return fmt.Errorf("--turn-secret must be at least %d bytes (it is %d)", minSecretBytes, len(c.turnSecret))
	case c.turnUDPPort < 0 || c.turnUDPPort > 65535 || c.turnTLSPort < 0 || c.turnTLSPort > 65535:
		return errors.New("--turn-udp-port and --turn-tls-port must be ports (0: off)")
	case (c.turnCert == "") != (c.turnKey == ""):
		return errors.New("--turn-cert and --turn-key go together")
	case c.rtcUDPPort < 0 || c.rtcUDPPort > 65535:
		return fmt.Errorf("--rtc-udp-port %d is not a port", c.rtcUDPPort)
	case c.rtcTCPPort < -1 || c.rtcTCPPort > 65535:
		return fmt.Errorf("--rtc-tcp-port %d is not a port", c.rtcTCPPort)
	case c.nodeIP != "" && net.ParseIP(c.nodeIP) == nil:
		return fmt.Errorf("--node-ip %q is not an IP address", c.nodeIP)
	case c.logFormat != "text" && c.logFormat != "json":
		return fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	if _, err := parsePrefixes(c.turnAllowPeers); err != nil {
		return fmt.Errorf("--turn-allow-peers: %w", err)
	}
	if err := c.validateWebhook(); err != nil {
		return err
	}
	if err := c.validateSentinel(); err != nil {
		return err
	}
	if err := c.validateTrail(); err != nil {
		return err
	}
	if err := c.rec.validate(c.dev); err != nil {
		return err
	}
	if c.webhookURL != "" {
		if u, err := url.Parse(c.webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--webhook-url %q is not an http(s) URL", c.webhookURL)
		}
		if len(c.webhookSecret) < minSecretBytes && !c.dev {
			return fmt.Errorf("--webhook-secret must be at least %d bytes with --webhook-url", minSecretBytes)
		}
	}
	if c.publicURL != "" {
		if u, err := url.Parse(c.publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--public-url %q is not an http(s) URL", c.publicURL)
		}
	}
	return nil
}

func newLogger(c serveConfig, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// serve is `invigil serve`: the flags, then a node that runs until ctx
// is cancelled (SIGINT/SIGTERM) and shuts down gracefully: not ready,
// clients told, sessions and PeerConnections closed, exit 0.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	n, err := newNode(cfg, log)
	if err != nil {
		return err
	}
	defer n.close()
	return n.Run(ctx, stdout)
}

// mediaAddresses decides where the media sockets bind and what address
// host candidates advertise. A --node-ip this host owns is bound directly;
// any other (a cloud VM's public IP) is advertised over a wildcard bind.
func mediaAddresses(nodeIP string) (bind net.IP, advertise []string) {
	if nodeIP == "" {
		return nil, nil
	}
	ip := net.ParseIP(nodeIP)
	if ip.IsLoopback() || hostOwns(ip) {
		return ip, nil
	}
	return nil, []string{nodeIP}
}

func hostOwns(ip net.IP) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reachable turns a listener address into one a browser can open:
// a wildcard host becomes 127.0.0.1.
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// printDevLinks prints a proctor link and a student link for --dev.
func printDevLinks(w io.Writer, public, secret string) {
	mint := func(identity, name string, role room.Role) string {
		tok, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: devRoom, Identity: identity, Role: role, Name: name, TTL: devTokenTTL})
		if err != nil {
			return "(token: " + err.Error() + ")"
		}
		return tok
	}
	fmt.Fprintf(w, "\nInvigil dev server on %s (room %q, links valid %s)\n\n", public, devRoom, devTokenTTL)
	fmt.Fprintf(w, "Proctor: %s/proctor#token=%s\n\n", public, mint("proctor-1", "Proctor", room.RoleProctor))
	for i := 1; i <= 2; i++ {
		id := "student-" + strconv.Itoa(i)
		fmt.Fprintf(w, "Student %d: %s/student#token=%s\n\n", i, public, mint(id, "Student "+strconv.Itoa(i), room.RoleStudent))
	}
	fmt.Fprintf(w, "More tokens: invigil token --dev --room %s --identity NAME --role student\n\n", devRoom)
}

// netipAddr converts a net.IP, unmapping IPv4.
func netipAddr(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// listenAdmin opens the admin listener; a bare port binds loopback.
func listenAdmin(addr string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr: %w", err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	return ln, nil
}

// serveAdmin serves pprof and /drain on the admin listener, never on the
// public one: profiles reveal memory contents.
func serveAdmin(ln net.Listener, drain http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/drain", drain)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv
}

// drainRooms lets running rooms finish: /readyz is 503 and no new room
// opens, until everyone has left, the timeout passes, or a second
// SIGINT/SIGTERM says stop now.
func drainRooms(rooms *room.Rooms, timeout time.Duration, log *slog.Logger) {
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	log.Info("draining: no new rooms; running rooms go on", "participants", rooms.Participants(), "timeout", timeout)
	for rooms.Participants() > 0 {
		select {
		case <-again:
			log.Info("second signal: stopping now", "participants", rooms.Participants())
			return
		case <-deadline.C:
			log.Info("drain timeout: closing the sessions left", "participants", rooms.Participants())
			return
		case <-tick.C:
		}
	}
	log.Info("drained: every room has ended")
}
