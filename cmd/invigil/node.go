package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/cluster"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/internal/pionlog"
	"github.com/invigil/invigil/metrics"
	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/roomapi"
	"github.com/invigil/invigil/sfu"
	"github.com/invigil/invigil/signaling"
	"github.com/invigil/invigil/web"
)

// node is one Invigil node. newNode builds its components in dependency
// order, each from the configuration and the components before it; Run
// serves until its context ends and shuts the node down; close releases
// what newNode opened, in reverse. A new component is a constructor in
// its own package and one step here.
type node struct {
	cfg serveConfig
	log *slog.Logger

	metrics    *metrics.Metrics
	udp        *net.UDPConn // the media port every session shares (its first socket)
	udpReaders int          // sockets on it
	tcp        net.Listener // ICE-TCP; nil with --rtc-tcp-port -1
	bindIP     net.IP       // where media and TURN bind; nil: the wildcard
	engine     *sfu.Engine
	redis      *cluster.Redis             // nil for a node alone
	trail      audit.Store                // the audit store, behind the webhook when there is one
	spool      *audit.Spool               // the trail in cluster mode (nil alone)
	held       atomic.Pointer[room.Rooms] // n.rooms for the spool's shipper, once made
	webhook    *audit.Webhook             // nil without --webhook-url
	rooms      *room.Rooms
	health     *metrics.Health
	rec        *record.Recorder
	httpLn     net.Listener
	public     string       // the base URL clients reach this node at
	agentLn    net.Listener // nil without --agent-addr
	adminLn    net.Listener // nil without --admin-addr
	turn       *turnNode
	cluster    cluster.Cluster
	member     *cluster.Member
	sig        *signaling.Server
	routes     *httpapi.Routes
	lockouts   *roomapi.Lockouts // ended rooms and revocations
	roomAPI    *roomapi.API

	// drainedSince is when the node began to drain (unix nanos; 0: not
	// draining): a SIGTERM after `invigil drain` waits only what is left
	// of --drain-timeout.
	drainedSince atomic.Int64
	drain        drainState // a drain's deadline (drain.go)
	// closers release what the steps opened; close runs them in reverse.
	closers []func()
}

// newNode builds a node; on error, what it had opened is closed again.
func newNode(cfg serveConfig, log *slog.Logger) (*node, error) {
	n := &node{cfg: cfg, log: log}
	steps := []func() error{
		n.openMetrics,
		n.openMedia,
		n.openTrail,
		n.openRooms,
		n.openRoomAPI,
		n.openRecorder,
		n.openListeners,
		n.openTURN,
		n.openCluster,
		n.openSignaling,
		n.openRoutes,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// onClose adds f to what close runs.
func (n *node) onClose(f func()) { n.closers = append(n.closers, f) }

// close releases the node's components in the reverse order of their
// making: TURN and the listeners first, the recorder (which records
// recording_stopped) before the audit store, the media engine last.
func (n *node) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
	n.closers = nil
}

// openMetrics makes the registry the components report into; its
// scrape-time sources are added by openRoutes, once they all exist.
func (n *node) openMetrics() error {
	n.metrics = metrics.New(metrics.Config{Version: version, Revision: revision(), MessageTypes: signaling.ClientMessageTypes()})
	return nil
}

// maxUDPReaders bounds the default number of media sockets: past a
// handful of cores a node is better as several nodes.
const maxUDPReaders = 8

// openMedia opens the shared media sockets and the SFU on them.
func (n *node) openMedia() error {
	bindIP, advertise := mediaAddresses(n.cfg.nodeIP)
	readers := n.cfg.udpReaders
	if readers <= 0 {
		readers = min(runtime.GOMAXPROCS(0), maxUDPReaders)
	}
	conns, err := sfu.ListenUDP("udp", &net.UDPAddr{IP: bindIP, Port: n.cfg.rtcUDPPort}, readers)
	if err != nil {
		return fmt.Errorf("rtc udp port: %w", err)
	}
	closeUDP := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	more := make([]net.PacketConn, 0, len(conns)-1)
	for i, c := range conns {
		setUDPBuffers(c, n.cfg.udpBuffer, n.log)
		if i > 0 {
			more = append(more, c)
		}
	}
	udp := conns[0]
	var tcp net.Listener
	if n.cfg.rtcTCPPort >= 0 {
		if tcp, err = net.ListenTCP("tcp", &net.TCPAddr{IP: bindIP, Port: n.cfg.rtcTCPPort}); err != nil {
			closeUDP()
			return fmt.Errorf("rtc tcp port: %w", err)
		}
	}
	engine, err := sfu.New(sfu.Config{
		UDP:             udp,
		MoreUDP:         more,
		TCP:             tcp,
		AdvertiseIPs:    advertise,
		IncludeLoopback: bindIP != nil && bindIP.IsLoopback(),
		ConcealFocus:    n.cfg.concealFocus,
		Observer:        n.metrics,
		Logger:          n.log.With("component", "sfu"),
		PionLogs:        pionlog.New(n.log.With("component", "sfu"), pionlog.Media, 0),
	})
	if err != nil {
		closeUDP()
		if tcp != nil {
			tcp.Close()
		}
		return err
	}
	n.udp, n.udpReaders, n.tcp, n.bindIP, n.engine = udp, len(conns), tcp, bindIP, engine
	n.onClose(func() { engine.Close() })
	return nil
}

// openTrail opens the audit store: in cluster mode the spool, fsynced
// under --data-dir and shipped to a Redis Stream per room (a room keeps
// one sequence when it moves between nodes), else a file per room under
// --data-dir; and the webhook in front of it. The
// Redis connection is the cluster's too; it closes last of the three,
// after the recorder and rooms have recorded their last events.
func (n *node) openTrail() error {
	if n.cfg.clusterMode() {
		cluster.SetRedisLogger(n.log)
		r, err := n.cfg.openRedis()
		if err != nil {
			return err
		}
		n.redis = r
		n.onClose(func() { r.Close() })
		if err := n.openSpool(r); err != nil {
			return err
		}
	} else {
		fs, err := audit.NewFileStore(filepath.Join(n.cfg.dataDir, "events"), n.log.With("component", "events"))
		if err != nil {
			return err
		}
		n.onClose(func() { fs.Close() })
		n.trail = fs
	}
	if n.cfg.webhookURL != "" {
		return n.openWebhook()
	}
	return nil
}

// openRooms makes the room registry, recording into the trail, and the
// health state /readyz reports.
func (n *node) openRooms() error {
	rooms, err := room.New(room.Config{
		Events:       n.trail,
		ResumeWindow: resumeWindow(n.cfg.resumeWindow),
		NodeID:       n.cfg.nodeID,
		MaxPerRoom:   n.cfg.maxPerRoom,
		MaxPerNode:   n.cfg.maxPerNode,
		MaxRooms:     n.cfg.maxRooms,
		EmptyTimeout: n.cfg.emptyTimeout,
		Logger:       n.log.With("component", "room"),
	})
	if err != nil {
		return err
	}
	n.rooms = rooms
	n.held.Store(rooms)
	n.health = &metrics.Health{Full: n.full}
	return nil
}

// openRecorder makes the recorder, whose events go through the rooms (so
// proctors see them live), and hooks it to every student's tracks.
func (n *node) openRecorder() error {
	rec, err := newRecorder(n.cfg, n.rooms, n.recordingIndex(), n.recordingForward(), n.log)
	if err != nil {
		return err
	}
	n.rec = rec
	n.onClose(func() { rec.Close() })
	n.rooms.OnPublish(recordPolicy(n.cfg.rec.all, rec))
	return nil
}

// openListeners opens the HTTP listener, and the agent-check and admin
// ones when asked for, so the ports TURN refuses are the ones they got
// (a configured :0 included).
func (n *node) openListeners() error {
	ln, err := net.Listen("tcp", n.cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	n.httpLn = ln
	n.onClose(func() { ln.Close() })
	n.public = n.cfg.publicURL
	if n.public == "" {
		n.public = "http://" + reachable(ln.Addr().String())
	}
	if n.cfg.agentAddr != "" {
		if n.agentLn, err = net.Listen("tcp", n.cfg.agentAddr); err != nil {
			return fmt.Errorf("agent listener: %w", err)
		}
		agentLn := n.agentLn
		n.onClose(func() { agentLn.Close() })
	}
	if n.cfg.adminAddr != "" {
		if n.adminLn, err = listenAdmin(n.cfg.adminAddr); err != nil {
			return err
		}
		adminLn := n.adminLn
		n.onClose(func() { adminLn.Close() })
	}
	return nil
}

// openTURN starts the embedded STUN/TURN server, which may relay to the
// SFU's media ports and never to the node's other listeners.
func (n *node) openTURN() error {
	mediaIP := net.ParseIP(n.cfg.nodeIP)
	if mediaIP == nil {
		mediaIP = hostIP()
	}
	media := []netip.AddrPort{netip.AddrPortFrom(netipAddr(mediaIP), uint16(n.udp.LocalAddr().(*net.UDPAddr).Port))}
	if n.tcp != nil {
		media = append(media, netip.AddrPortFrom(netipAddr(mediaIP), uint16(n.tcp.Addr().(*net.TCPAddr).Port)))
	}
	deny := []netip.AddrPort{addrPort(n.httpLn.Addr())}
	for _, l := range []net.Listener{n.agentLn, n.adminLn} {
		if l != nil {
			deny = append(deny, addrPort(l.Addr()))
		}
	}
	t, err := startTURN(n.cfg, n.bindIP, media, deny, n.lockouts.Denied, n.public, n.log)
	if err != nil {
		return err
	}
	n.turn = t
	n.onClose(func() { t.Close() })
	return nil
}

// openCluster joins the cluster: Redis when --redis-url is set, else
// this node alone.
func (n *node) openCluster() error {
	mem := cluster.NewMemory(n.cfg.nodeID, n.public)
	mem.Held = n.rooms.Has
	n.cluster = mem
	if n.redis != nil {
		n.cluster = n.redis
	}
	n.member = cluster.NewMember(cluster.MemberConfig{
		Store:        n.cluster,
		NodeID:       n.cfg.nodeID,
		URL:          n.public,
		Version:      version,
		Status:       n.clusterStatus,
		Rooms:        n.rooms.Names,
		OnStoreError: n.metrics.RedisError,
		Logger:       n.log.With("component", "cluster"),
	})
	return nil
}

// openSignaling makes the WebSocket endpoint: sessions join rooms and
// get PeerConnections; in cluster mode a join for a room held elsewhere
// is redirected there.
func (n *node) openSignaling() error {
	var owners signaling.Owners
	if n.redis != nil {
		owners = spoolOwners{member: n.member, spool: n.spool}
	}
	c := n.cfg
	sig, err := signaling.NewServer(signaling.Config{
		Owners:         owners,
		Gate:           n.lockouts,
		ICEServers:     n.turn.iceServers,
		Rooms:          n.rooms,
		Engine:         signaling.SFU(n.engine),
		Secret:         []byte(c.apiSecret),
		AllowedOrigins: splitList(c.allowedOrigins),
		PublicURL:      n.public,
		Limits: signaling.Limits{MaxConnsPerIP: c.maxConnsPerIP, ConnRatePerIP: c.connRatePerIP,
			ConnBurstPerIP: c.connBurstPerIP, MsgRate: c.messageRate,
			MsgRatePerIP: c.messageRateIP, MsgBurstPerIP: int(3 * c.messageRateIP)},
		JoinTimeout: c.joinTimeout,
		Version:     version,
		Observer:    n.metrics,
		Logger:      n.log.With("component", "signaling"),
	})
	if err != nil {
		return err
	}
	n.sig = sig
	return nil
}

// openRoutes registers every HTTP route (docs/http.md lists them) and
// hands the metrics their scrape-time sources.
func (n *node) openRoutes() error {
	t := httpapi.NewRoutes(signaling.BearerVerifier([]byte(n.cfg.apiSecret)))
	anyone := httpapi.Public()
	t.Handle("GET /v1/rtc", anyone, "WebSocket signaling; the token comes in the first message", n.sig)
	t.HandleFunc("GET /healthz", anyone, "200 while the process serves", n.health.Healthz)
	t.HandleFunc("GET /readyz", anyone, "200 when the node takes new rooms; 503 draining or full", n.health.Readyz)
	t.Handle("GET /capacity", anyone, "occupancy and headroom of this node", metrics.CapacityHandler(n.capacity))
	t.Handle("GET /metrics", anyone, "Prometheus exposition", n.metrics.Handler())
	t.Handle("POST /v1/node/drain", httpapi.Admin(), "drain: no new rooms here; running rooms go on", n.drainHandler(true))
	t.Handle("DELETE /v1/node/drain", httpapi.Admin(), "stop draining", n.drainHandler(false))
	audit.RegisterAPI(t, n.trail)
	t.HandleFunc("POST /v1/webhooks/dead-letters/retry", httpapi.Admin(), "post every webhook dead letter once more", n.retryDeadLetters)
	record.RegisterAPI(t, n.rec, n.recordingKeys)
	cluster.RegisterAPI(t, n.cluster, n.metrics.RedisError)
	n.roomAPI.Register(t)
	var webOpts web.Options
	if n.redis != nil {
		// A page follows a redirect to the node holding its room.
		webOpts.ConnectSources = []string{"wss:", "ws:"}
	}
	pages := web.HandlerWith(webOpts)
	t.Handle("GET /student", anyone, "the student page", pages)
	t.Handle("GET /proctor", anyone, "the proctor page", pages)
	t.Handle("GET /review", anyone, "the review page", pages)
	t.Handle("GET /sdk/", anyone, "the browser SDK", pages)
	t.Handle("GET /static/", anyone, "the pages' scripts and styles", pages)
	t.HandleFunc("GET /{$}", anyone, "what this server is", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Invigil media server. Pages: /student and /proctor, with #token=… in the URL.")
	})
	n.routes = t

	sources := metrics.Sources{
		Rooms: func() metrics.RoomStats {
			s := n.rooms.Stats()
			return metrics.RoomStats{Rooms: s.Rooms, Students: s.Students, Proctors: s.Proctors}
		},
		Media:     func() metrics.MediaStats { return mediaStats(n.engine.Stats()) },
		TURN:      n.turn.stats,
		Recording: n.recordingStats,
		Webhook:   n.webhookStats,
	}
	if n.spool != nil {
		sources.Trail = n.trailStats
	}
	n.metrics.AddSources(sources)
	return nil
}

// Run serves until ctx is cancelled (SIGINT/SIGTERM), then shuts down
// gracefully: not ready, clients told, sessions and PeerConnections
// closed. Every goroutine it starts has ended when it returns.
func (n *node) Run(ctx context.Context, stdout io.Writer) error {
	loops, stopLoops := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stopLoops(); wg.Wait() }()
	wg.Go(func() { n.rooms.Watch(loops, n.cfg.stallAfter) })
	wg.Go(func() { n.member.Run(loops) })
	wg.Go(func() { n.roomAPI.Run(loops) })
	wg.Go(func() { n.publishRecordingKeys(loops) })
	if days := n.cfg.rec.retentionDays; days > 0 {
		wg.Go(func() { n.rec.KeepFor(loops, time.Duration(days)*24*time.Hour, time.Hour) })
	}
	// Registered before the node says it is serving: a SIGHUP from then
	// on reloads the TURNS certificate, never kills (SIGHUP's default).
	if reload := n.turn.watchHUP(n.log); reload != nil {
		wg.Go(func() { reload(loops) })
	}

	srv := &http.Server{Handler: n.routes, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(n.httpLn) }()

	attrs := []any{"http_addr", n.httpLn.Addr().String(), "rtc_udp_addr", n.udp.LocalAddr().String(), "rtc_udp_readers", n.udpReaders, "public_url", n.public, "version", version}
	if n.tcp != nil {
		attrs = append(attrs, "rtc_tcp_addr", n.tcp.Addr().String())
	}
	if n.turn.udpAddr != "" {
		attrs = append(attrs, "turn_addr", n.turn.udpAddr)
	}
	if n.agentLn != nil {
		agent := metrics.ServeAgent(n.agentLn, n.capacity, n.log.With("component", "agent"))
		defer agent.Close(context.Background())
		attrs = append(attrs, "agent_addr", agent.Addr().String())
	}
	if n.adminLn != nil {
		admin := serveAdmin(n.adminLn, adminDrainHandler(func(d time.Duration) { n.setDrain(true, d, "admin listener") }, n.capacity))
		defer admin.Close() // its connections too
		attrs = append(attrs, "admin_addr", n.adminLn.Addr().String())
	}
	n.log.Info("invigil serving", attrs...)
	if n.cfg.dev {
		printDevLinks(stdout, n.public, n.cfg.apiSecret)
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	n.shutdown(srv)
	<-served // http.ErrServerClosed, now Shutdown has returned
	return nil
}

// shutdown stops the node: /readyz 503 and no new rooms, the rooms given
// what is left of --drain-timeout, then everyone told (leave, WebSocket
// close 1001), the sessions waited for, the HTTP server shut down.
func (n *node) shutdown(srv *http.Server) {
	n.health.SetDraining(true)
	n.rooms.SetDraining(true)
	n.drainedSince.CompareAndSwap(0, time.Now().UnixNano())
	if left := n.cfg.drainTimeout - time.Since(time.Unix(0, n.drainedSince.Load())); n.cfg.drainTimeout > 0 && left > 0 {
		drainRooms(n.rooms, left, n.log)
	}
	n.log.Info("shutting down", "timeout", n.cfg.shutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.shutdownTimeout)
	defer cancel()
	// Shutdown does not wait for hijacked (WebSocket) connections: close
	// them ourselves with GoingAway and wait for their sessions.
	n.evacuate("shutdown")
	n.rooms.Close(room.ReasonShutdown)
	if err := n.sig.Shutdown(ctx); err != nil {
		n.log.Warn("sessions still open at shutdown timeout", "open", n.sig.Sessions(), "err", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		n.log.Warn("http shutdown", "err", err)
	}
	n.log.Info("stopped")
}

// capacity is the node's occupancy and headroom now.
func (n *node) capacity() metrics.Capacity {
	st := n.rooms.Stats()
	return metrics.Capacity{
		NodeID: n.cfg.nodeID, Version: version, Draining: n.health.Draining(),
		Rooms: st.Rooms, Students: st.Students, Proctors: st.Proctors,
		MaxParticipants: n.cfg.maxPerNode, MaxRooms: n.cfg.maxRooms,
	}.Compute()
}

// clusterStatus is what each heartbeat reports.
func (n *node) clusterStatus() cluster.Status {
	cp, ms := n.capacity(), n.engine.Stats()
	if n.full() {
		cp.FreeSeats = 0 // at --max-rooms (or the spool refusing): no new room here
	}
	return cluster.Status{Rooms: cp.Rooms, Students: cp.Students, Proctors: cp.Proctors,
		Capacity: cp.MaxParticipants, FreeSeats: cp.FreeSeats, Draining: cp.Draining,
		Tracks: int(ms.AudioTracksIn + ms.VideoTracksIn), BytesOut: ms.BytesOut}
}

// recordingStats reports the recorder for metrics.
func (n *node) recordingStats() metrics.RecordingStats {
	s := n.rec.Stats()
	return metrics.RecordingStats{Active: s.Active, Bytes: s.Bytes, Failures: s.Failures, Dropped: s.Dropped}
}

// webhookStats reports the webhook for metrics; zeros without one.
func (n *node) webhookStats() metrics.WebhookStats {
	if n.webhook == nil {
		return metrics.WebhookStats{}
	}
	s := n.webhook.Stats()
	return metrics.WebhookStats{Delivered: s.Delivered, Failed: s.DeadLettered}
}

// mediaStats converts the sfu's snapshot for the metrics package, which
// imports neither.
func mediaStats(s sfu.Stats) metrics.MediaStats {
	m := metrics.MediaStats{
		PacketsIn: s.PacketsIn, BytesIn: s.BytesIn, PacketsOut: s.PacketsOut, BytesOut: s.BytesOut,
		PacketsLost: s.PacketsLost, NACKs: s.NACKs, Retransmits: s.Retransmits, PLIs: s.PLIsSent,
		NACKsSent: s.NACKsSent, LayerSwitches: s.LayerSwitches, DTLSFailures: s.DTLSFailures, Sessions: s.Peers,
		AudioTracksIn: s.AudioTracksIn, VideoTracksIn: s.VideoTracksIn,
		AudioTracksOut: s.AudioTracksOut, VideoTracksOut: s.VideoTracksOut,
		Dropped: make(map[string]uint64, len(s.Drops)),
		Rejected: map[string]uint64{"srtp": s.SRTPErrors, "unknown_source": s.UnknownSource, "unknown_ssrc": s.UnknownSSRC,
			"stun_auth": s.STUNRefused, "malformed": s.Malformed},
	}
	for i, n := range s.Drops {
		m.Dropped[sfu.DropReasons[i]] = n
	}
	return m
}
