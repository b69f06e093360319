package signaling

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/room"
)

// Timing limits of docs/protocol.md.
const (
	// DefaultJoinTimeout is how long a new connection has to send join.
	DefaultJoinTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one frame's write; a client slower than
	// this is dropped instead of holding its session's queue.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultPingInterval is how often the server pings a client.
	DefaultPingInterval = 15 * time.Second
	// DefaultPingTimeout is how long a pong may take before the client is
	// considered gone (with the interval: dead peers go within 45 s).
	DefaultPingTimeout = 30 * time.Second
	// outQueue is the outbound queue per session: generous for a proctor
	// whose room announces 25 students at once, small enough to bound
	// what one stuck client holds.
	outQueue = 256
)

// Config wires a signaling Server.
type Config struct {
	Rooms *room.Rooms
	// Engine makes each session's PeerConnection: SFU(the node's
	// *sfu.Engine).
	Engine Engine
	// Secret verifies join tokens (HS256).
	Secret []byte
	// ICEServers returns what a client should use besides the SFU's own
	// candidates (STUN/TURN), with credentials valid until expires. Nil
	// means none.
	ICEServers func(identity string, expires time.Time) []ICEServer
	// AllowedOrigins are the Origin host patterns accepted besides the
	// server's own host (coder/websocket AcceptOptions.OriginPatterns).
	AllowedOrigins []string
	// PublicURL is the base URL browsers reach this node's pages at; a
	// device link (a student's phone) points there. Empty: no device
	// links.
	PublicURL string
	Version   string
	// Limits are the abuse limits; zero fields take the defaults.
	Limits Limits
	// JoinTimeout is how long a new connection has to join; 0 means
	// DefaultJoinTimeout.
	JoinTimeout time.Duration
	// WriteTimeout, PingInterval and PingTimeout: see their defaults.
	WriteTimeout, PingInterval, PingTimeout time.Duration
	// Observer receives events for metrics; nil means none.
	Observer Observer
	// Owners, if set, says which node owns a room (cluster mode): a join
	// for a room another node owns is answered with a redirect.
	Owners Owners
	// Gate, if set, refuses joins the exam platform has locked out: a
	// room it ended, an identity it revoked.
	Gate Gate
	// Logger receives the package's lines; nil discards them.
	Logger *slog.Logger
}

// Owners finds the node that holds a room, making this node the owner
// when none does.
type Owners interface {
	// Owner returns the owning node's base URL, or local when this node
	// owns (or has just claimed) the room.
	Owner(ctx context.Context, room string) (url string, local bool, err error)
	// Arrive is called once for each local answer of Owner (with no
	// error), when the join is over: with enter (the participant
	// entering the room, which Arrive runs) or with nil when the join
	// failed before that. Until then the owner counts the joining
	// participant's seat as taken; running enter inside Arrive lets it
	// count each seat once, arriving or in the room.
	Arrive(enter func())
}

// Gate says whether a verified token may still join: it refuses (with
// room.ErrRoomEnded or room.ErrRevoked) a token issued at or before the
// second its room was ended, and an identity revoked for the room or
// every room. It decides alone when its store cannot answer.
type Gate interface {
	Admit(ctx context.Context, room, identity string, issued time.Time) error
}

// Observer is told what signaling sees, for metrics. Calls are per
// message or per session, never per packet, and must not block.
type Observer interface {
	// Message counts one client frame by type ("invalid" when it did not
	// decode) and whether it succeeded.
	Message(typ string, ok bool)
	// WebSocket reports a connection opened (+1) or closed (-1).
	WebSocket(delta int)
	// JoinToMedia is the time from a join message to the first packet of
	// that participant's media forwarded to a subscriber.
	JoinToMedia(d time.Duration)
	// ICEConnection reports a media connection coming up (with the
	// client's candidate type) or failing.
	ICEConnection(ok bool, candidateType string)
	// Refused counts a refused connection or request by reason: a wire
	// error code, or connections_per_ip, connection_rate, handshake.
	Refused(reason string)
}

type nopObserver struct{}

func (nopObserver) Message(string, bool)       {}
func (nopObserver) WebSocket(int)              {}
func (nopObserver) JoinToMedia(time.Duration)  {}
func (nopObserver) ICEConnection(bool, string) {}
func (nopObserver) Refused(string)             {}

// Server serves GET /v1/rtc.
type Server struct {
	cfg   Config
	log   *slog.Logger
	obs   Observer
	addrs *addrLimits

	// mu guards sessions and closing.
	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	wg       sync.WaitGroup // one per running session

	// conns numbers connections as they arrive, before the upgrade is
	// answered: a client's next connection always has a larger number
	// than the one it gave up (room.Participant.Conn).
	conns atomic.Uint64
}

// NewServer checks cfg and returns a Server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Rooms == nil || cfg.Engine == nil {
		return nil, errors.New("signaling: Config.Rooms and Config.Engine are required")
	}
	if len(cfg.Secret) == 0 {
		return nil, errors.New("signaling: Config.Secret is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	obs := cfg.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = DefaultPingInterval
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = DefaultPingTimeout
	}
	return &Server{cfg: cfg, log: cfg.Logger, obs: obs, addrs: newAddrLimits(cfg.Limits), sessions: make(map[*session]struct{})}, nil
}

// ServeHTTP upgrades to a WebSocket and runs one session until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn := s.conns.Add(1)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		httpapi.Fail(w, httpapi.CodeUnavailable, "the node is shutting down; connect again")
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	addr := clientAddr(r.RemoteAddr)
	addrMsgs, reason, ok := s.addrs.admit(addr, time.Now())
	if !ok {
		s.obs.Refused(reason)
		s.log.Debug("connection refused", "remote", r.RemoteAddr, "reason", reason)
		w.Header().Set("Retry-After", "1")
		httpapi.Fail(w, httpapi.CodeRateLimited, "too many connections from your address ("+reason+")")
		return
	}
	defer s.addrs.release(addr, time.Now())

	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.AllowedOrigins})
	if err != nil {
		// coder/websocket has answered already: 403 for a foreign
		// Origin, 400 for a request that is not a WebSocket upgrade.
		s.obs.Refused("handshake")
		s.log.Debug("websocket accept failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws.SetReadLimit(MaxFrameBytes)
	s.obs.WebSocket(1)
	defer s.obs.WebSocket(-1)
	sess := newSession(s, ws, r.RemoteAddr)
	sess.addrMsgs = addrMsgs
	sess.order = conn

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "shutting down")
		return
	}
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()

	// Not r.Context(): the session must outlive nothing but itself, and
	// Shutdown ends it explicitly with GoingAway.
	sess.run(context.Background())

	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// Shutdown refuses new connections, tells every client the server is going
// away, closes their sessions and waits for them (or for ctx).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	all := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.end(CodeShuttingDown, room.ReasonShutdown)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sessions returns how many WebSocket sessions are open.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
