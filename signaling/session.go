package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/room"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// A session is one WebSocket connection. Its parts, by file:
// transport.go (the reader, writer and pinger), dispatch.go (the table
// of client message types), join.go (the token, the cluster's redirect,
// the room and the PeerConnection), negotiate.go (SDP and candidates,
// and the sfu.Signaler the Peer sends through), notify.go (the
// room.Notifier the room announces through), interventions.go (what
// proctors do to students and students report), resume.go (the media
// connection's losses on the trail).

// errSessionEnded stops a session's goroutines once it closed itself.
var errSessionEnded = errors.New("session ended")

// session is one WebSocket connection: before join, a token check; after,
// one participant in one room with one PeerConnection.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	remote string
	order  uint64 // the connection's arrival on the node: room.Participant.Conn
	log    *slog.Logger

	out        chan []byte   // outbound frames, bounded; see outQueue
	endCh      chan endReq   // at most one request, see finish
	endOnce    sync.Once     // finish runs once
	reason     string        // why the participant left; written in finish
	joined     atomic.Bool   // join succeeded
	violations *rate.Limiter // a student's violation reports
	forbidden  *rate.Limiter // forbidden audit events; read goroutine only
	suppressed int           // forbidden requests not recorded since the last one that was
	firstMedia atomic.Bool   // a published track reached a subscriber
	joinWait   *time.Timer   // fires join_timeout
	msgs       *rate.Limiter // messages per second; read goroutine only
	addrMsgs   *rate.Limiter // the client address's, shared with its other connections
	cands      int           // candidates received; read goroutine only

	// eventsMu guards eventsLive and eventsEarly: what the room tells the
	// client while it joins (a proctor's audit events, a student's
	// talk-back that carries on from its previous session) waits for the
	// joined reply.
	eventsMu    sync.Mutex
	eventsLive  bool
	eventsEarly []any // EventMessage, InterventionMessage

	// mediaMu guards mediaDown, mediaTrail and mediaFlushing: when the
	// media connection went disconnected (zero while connected), and the
	// trail entries that makes, in order, waiting to be recorded. pion
	// calls the state callback on a new goroutine per change, so calls
	// can overlap; see mediaState.
	mediaMu       sync.Mutex
	mediaDown     time.Time
	mediaTrail    []mediaEvent
	mediaFlushing bool

	// messagesMu guards messages: the ids of proctor messages delivered
	// to this student, so an acknowledgement names one of them.
	messagesMu sync.Mutex
	messages   map[int64]bool

	// Set by the reader goroutine on join, before the client can cause
	// any callback that reads them.
	grant Grant
	p     *room.Participant
	rm    *room.Room
	peer  Peer
}

// endReq is how a session ends: an optional last frame, then a close.
type endReq struct {
	frame  []byte
	status websocket.StatusCode
	text   string
}

func newSession(srv *Server, conn *websocket.Conn, remote string) *session {
	return &session{
		srv:    srv,
		conn:   conn,
		remote: remote,
		log:    srv.log.With("remote", remote),
		out:    make(chan []byte, outQueue),
		endCh:  make(chan endReq, 1),
		msgs:   rate.NewLimiter(rate.Limit(srv.cfg.Limits.MsgRate), srv.cfg.Limits.MsgBurst),
		// Violation reports: 30 a minute, 10 at once.
		violations: rate.NewLimiter(rate.Every(time.Minute/violationsPerMinute), 10),
		// Forbidden requests: each is answered and counted, but only 10 at
		// once, then 10 a minute, become audit events (the next recorded
		// one says how many were not): a spamming client must not flood
		// the trail, the webhook and the proctors' queues.
		forbidden: rate.NewLimiter(rate.Every(time.Minute/10), 10),
		reason:    room.ReasonDisconnect,
	}
}

// run serves the connection until it closes, then leaves the room and
// closes the PeerConnection.
func (s *session) run(ctx context.Context) {
	timeout := s.srv.cfg.JoinTimeout
	s.joinWait = time.AfterFunc(timeout, func() {
		if !s.joined.Load() {
			s.reject(protoErr(CodeJoinTimeout, "no join within %s", timeout), "")
		}
	})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.readLoop(gctx) })
	g.Go(func() error { return s.writeLoop(gctx) })
	g.Go(func() error { return s.pingLoop(gctx) })
	err := g.Wait()
	s.joinWait.Stop()
	s.conn.CloseNow()

	if s.rm != nil {
		s.finish(nil, websocket.StatusNormalClosure, "", room.ReasonDisconnect)
		if s.reason == room.ReasonDisconnect {
			s.rm.Lost(s.p) // the student may come back within the resume window
		} else {
			s.rm.Leave(s.p, s.reason)
		}
	}
	if s.peer != nil {
		if cerr := s.peer.Close(); cerr != nil {
			s.log.Debug("peer close", "err", cerr)
		}
	}
	if s.joined.Load() {
		s.log.Info("session ended", "reason", s.reason, "cause", cause(err))
	} else {
		s.log.Debug("connection closed before join", "cause", cause(err))
	}
}

func cause(err error) string {
	if err == nil || errors.Is(err, errSessionEnded) {
		return "server"
	}
	if status := websocket.CloseStatus(err); status != -1 {
		return fmt.Sprintf("client closed (%d)", status)
	}
	return err.Error()
}

// finish ends the session once: the writer flushes the queue, writes
// frame, and closes with status. reason is what the room is told.
func (s *session) finish(frame []byte, status websocket.StatusCode, text, reason string) {
	s.endOnce.Do(func() {
		s.reason = reason
		s.endCh <- endReq{frame: frame, status: status, text: text}
	})
}

// reject answers a failed request with an error frame, closing the
// session when the code is fatal.
func (s *session) reject(err error, ref string) {
	code, msg := wireError(err)
	if refusalCodes[code] {
		s.srv.obs.Refused(code)
	}
	if code == CodeInternal {
		s.log.Error("request failed", "ref", ref, "err", err)
	} else {
		s.log.Debug("request refused", "code", code, "ref", ref, "err", err)
	}
	em := ErrorMessage{Envelope: envelope(TypeError, ref), Code: code, Message: msg}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		em.URL = pe.URL
	}
	frame, _ := json.Marshal(em)
	if isFatal(err) {
		s.finish(frame, closeStatus(code), code, room.ReasonDisconnect)
		return
	}
	select {
	case s.out <- frame:
	default:
	}
}

// end closes the session for the server's own reasons (shutdown).
func (s *session) end(code, reason string) {
	if s.joined.Load() {
		s.Evict(reason)
		return
	}
	s.reject(protoErr(code, "the server is shutting down"), "")
}

// ping answers a client's ping with its ts.
func (s *session) ping(m *Inbound) error {
	s.send(Pong{Envelope: envelope(TypePong, m.ID), TS: m.TS})
	return nil
}

// leave ends the session at the client's request.
func (s *session) leave(*Inbound) error {
	s.finish(nil, websocket.StatusNormalClosure, "left", room.ReasonLeft)
	return nil
}
