package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// errSessionEnded stops a session's goroutines once it closed itself.
var errSessionEnded = errors.New("session ended")

// session is one WebSocket connection: before join, a token check; after,
// one participant in one room with one PeerConnection.
type session struct {
	srv    *Server
	conn   *websocket.Conn
	remote string
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

	// mediaMu guards mediaDown: when the media connection went
	// disconnected, zero while connected. pion calls the state callback
	// on a new goroutine per change, so calls can overlap.
	mediaMu   sync.Mutex
	mediaDown time.Time

	// messagesMu guards messages: the ids of proctor messages delivered
	// to this student, so an acknowledgement names one of them.
	messagesMu sync.Mutex
	messages   map[int64]bool

	// Set by the reader goroutine on join, before the client can cause
	// any callback that reads them.
	grant Grant
	p     *room.Participant
	rm    *room.Room
	peer  *sfu.Peer
}

// endReq is how a session ends: an optional last frame, then a close.
type endReq struct {
	frame  []byte
	status websocket.StatusCode
	text   string
}

var (
	_ sfu.Signaler  = (*session)(nil)
	_ room.Notifier = (*session)(nil)
)

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

func (s *session) readLoop(ctx context.Context) error {
	var lastLimited time.Time
	for {
		typ, b, err := s.conn.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// coder/websocket has closed with 1009 already.
				s.srv.obs.Refused(CodeTooLarge)
				s.log.Debug("frame over the read limit; connection closed", "limit", MaxFrameBytes)
			}
			return err
		}
		if limited := s.limited(); limited != "" {
			// Dropped unread. One error a second at most: answering each
			// dropped frame would let a flood double itself.
			s.srv.obs.Refused(CodeRateLimited)
			if now := time.Now(); now.Sub(lastLimited) >= time.Second {
				lastLimited = now
				s.reject(protoErr(CodeRateLimited, "%s; messages are being dropped", limited), "")
			}
			continue
		}
		if typ != websocket.MessageText {
			s.reject(protoErr(CodeMalformed, "frames must be text (JSON)"), "")
			continue
		}
		s.handle(b)
	}
}

// limited says why a frame that just arrived must be dropped: this
// connection's message rate, or its address's, all connections together.
// "" lets it through.
func (s *session) limited() string {
	if !s.msgs.Allow() {
		return fmt.Sprintf("more than %.0f messages a second on this connection", s.srv.cfg.Limits.MsgRate)
	}
	if s.addrMsgs != nil && !s.addrMsgs.Allow() {
		return fmt.Sprintf("more than %.0f messages a second from your address", s.srv.cfg.Limits.MsgRatePerIP)
	}
	return ""
}

func (s *session) writeLoop(ctx context.Context) error {
	for {
		select {
		case b := <-s.out:
			if err := s.write(ctx, b); err != nil {
				return err
			}
		case req := <-s.endCh:
			// What was queued before the end still goes out, in order.
			for flushed := false; !flushed; {
				select {
				case b := <-s.out:
					if err := s.write(ctx, b); err != nil {
						return err
					}
				default:
					flushed = true
				}
			}
			if req.frame != nil {
				if err := s.write(ctx, req.frame); err != nil {
					return err
				}
			}
			s.conn.Close(req.status, req.text)
			return errSessionEnded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *session) write(ctx context.Context, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, s.srv.cfg.WriteTimeout)
	defer cancel()
	return s.conn.Write(wctx, websocket.MessageText, b)
}

func (s *session) pingLoop(ctx context.Context) error {
	t := time.NewTicker(s.srv.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, s.srv.cfg.PingTimeout)
			err := s.conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		}
	}
}

// send queues v for the client. A client whose queue is full is too slow
// to keep up with its room and is dropped.
func (s *session) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode message", "err", err)
		return
	}
	select {
	case s.out <- b:
	default:
		s.reject(protoErr(CodeSlowConsumer, "outbound queue of %d messages overflowed", outQueue), "")
	}
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

// handle decodes and dispatches one client frame, answers a failure with
// its error, and counts the frame. It runs on the reader goroutine.
func (s *session) handle(b []byte) {
	m, err := DecodeInbound(b)
	typ, ref := "invalid", ""
	if m != nil {
		ref = m.ID
		if knownTypes[m.Type] {
			typ = m.Type
		}
	}
	if err == nil {
		err = s.dispatch(m)
	}
	s.srv.obs.Message(typ, err == nil)
	if err != nil {
		if code, _ := wireError(err); code == CodeForbidden && s.rm != nil {
			s.recordForbidden(typ)
		}
		s.reject(err, ref)
	}
}

// ClientMessageTypes lists the client message types the server knows, for
// the metrics that label messages by type.
func ClientMessageTypes() []string { return slices.Sorted(maps.Keys(knownTypes)) }

// recordForbidden writes a forbidden request to the trail, within the
// session's budget; beyond it the request is only counted, and the next
// event written carries the count as details.suppressed.
func (s *session) recordForbidden(typ string) {
	if !s.forbidden.Allow() {
		s.suppressed++
		return
	}
	details := map[string]any{"request": typ}
	if s.suppressed > 0 {
		details["suppressed"] = s.suppressed
		s.suppressed = 0
	}
	s.rm.Record(room.EventForbidden, s.p.Identity, "", details)
}

// knownTypes are the client message types, the only values of the type
// label besides "invalid", so the metric's cardinality stays bounded.
var knownTypes = map[string]bool{TypeJoin: true, TypeOffer: true, TypeAnswer: true, TypeCandidate: true,
	TypePing: true, TypeLeave: true, TypeFocus: true, TypeView: true, TypeMessage: true, TypeMessageAck: true,
	TypeFlag: true, TypeNote: true, TypeEnd: true, TypeViolation: true, TypeTalkback: true,
	TypeDeviceLink: true}

func (s *session) dispatch(m *Inbound) error {
	if !s.joined.Load() {
		if m.Type != TypeJoin {
			return protoErr(CodeJoinRequired, "send join with a token first")
		}
		return s.join(m)
	}
	switch m.Type {
	case TypeJoin:
		return protoErr(CodeAlreadyJoined, "this connection has joined already")
	case TypeOffer:
		return s.handleOffer(m)
	case TypeAnswer:
		if err := s.peer.HandleAnswer(m.SDP); err != nil {
			return protoErr(CodeSDPInvalid, "answer not applied: %v", err)
		}
	case TypeCandidate:
		return s.handleCandidate(m)
	case TypePing:
		s.send(Pong{Envelope: envelope(TypePong, m.ID), TS: m.TS})
	case TypeLeave:
		s.finish(nil, websocket.StatusNormalClosure, "left", room.ReasonLeft)
	case TypeFocus:
		if s.p.Role != room.RoleProctor {
			return protoErr(CodeForbidden, "only a proctor chooses whom to focus")
		}
		return s.rm.SetFocus(s.p, *m.Identity)
	case TypeMessage, TypeFlag, TypeNote, TypeEnd:
		return s.intervene(m)
	case TypeDeviceLink:
		return s.deviceLink(m)
	case TypeTalkback:
		if s.p.Role != room.RoleProctor {
			return protoErr(CodeForbidden, "only a proctor talks to a student")
		}
		if err := s.rm.TalkTo(s.p, *m.Identity); errors.Is(err, room.ErrNoStudent) {
			return protoErr(CodeMalformed, "no student %q in this room", truncate(*m.Identity, 64))
		} else if err != nil {
			return err
		}
	case TypeMessageAck:
		if s.p.Role != room.RoleStudent {
			return protoErr(CodeForbidden, "only a student acknowledges a message")
		}
		s.messagesMu.Lock()
		sent := s.messages[m.MessageID]
		delete(s.messages, m.MessageID) // one acknowledgement each
		s.messagesMu.Unlock()
		if !sent {
			return protoErr(CodeMalformed, "no unacknowledged message %d was sent to you", m.MessageID)
		}
		s.srv.cfg.Rooms.Record(s.rm.Name(), room.EventMessageAck, s.p.Identity, s.p.Identity, map[string]any{"message_id": m.MessageID})
	case TypeViolation:
		if s.p.Role != room.RoleStudent {
			return protoErr(CodeForbidden, "only a student's page reports violations")
		}
		if !s.violations.Allow() {
			return protoErr(CodeRateLimited, "too many violation reports; at most %d a minute", violationsPerMinute)
		}
		details := map[string]any{"kind": m.Kind}
		for k, v := range m.Details {
			if k != "kind" {
				details[k] = v
			}
		}
		s.srv.cfg.Rooms.Record(s.rm.Name(), room.EventViolation, s.p.Identity, s.p.Identity, details)
	case TypeView:
		if s.p.Role != room.RoleProctor {
			return protoErr(CodeForbidden, "only a proctor has a view of students")
		}
		var tiles []room.Tile
		if m.Tiles != nil {
			tiles = make([]room.Tile, 0, len(*m.Tiles))
			for _, t := range *m.Tiles {
				tiles = append(tiles, room.Tile{Identity: t.Identity, Height: t.Height})
			}
		}
		return s.rm.SetView(s.p, tiles)
	}
	return nil
}

// handleOffer applies a client's offer. A student sends its camera,
// microphone and screen; a proctor only its talk-back microphone, one
// audio section whatever it labels it.
func (s *session) handleOffer(m *Inbound) error {
	if s.p.Role != room.RoleStudent && s.p.Role != room.RoleProctor {
		return protoErr(CodeForbidden, "a %s does not send media", s.p.Role)
	}
	sections, err := sendingSections(m.SDP)
	if err != nil {
		return protoErr(CodeSDPInvalid, "offer not parsed: %v", err)
	}
	if n := len(sections); n > s.srv.cfg.Limits.MaxTracks {
		return protoErr(CodeTooManyTracks, "the offer sends %d tracks; the limit is %d", n, s.srv.cfg.Limits.MaxTracks)
	}
	sources := make(map[string]string, len(m.Tracks))
	switch s.p.Role {
	case room.RoleProctor:
		if len(sections) > 1 || len(sections) == 1 && sections[0].kind != "audio" {
			return protoErr(CodeForbidden, "a proctor sends one audio track (talk-back) and nothing else")
		}
		for _, sec := range sections {
			sources[sec.mid] = room.SourceTalkback
		}
	default:
		for _, t := range m.Tracks {
			if t.Source == room.SourceTalkback {
				return protoErr(CodeForbidden, "only a proctor sends talk-back")
			}
			sources[t.Mid] = t.Source
		}
	}
	err = s.peer.HandleOffer(m.SDP, sources)
	if err != nil && !errors.Is(err, sfu.ErrGlare) {
		return protoErr(CodeSDPInvalid, "offer not applied: %v", err)
	}
	return err
}

func (s *session) handleCandidate(m *Inbound) error {
	if m.Candidate == nil {
		return nil
	}
	if s.cands++; s.cands > s.srv.cfg.Limits.MaxCandidates {
		return protoErr(CodeTooManyCandidates, "more than %d candidates in one session", s.srv.cfg.Limits.MaxCandidates)
	}
	err := s.peer.AddCandidate(*m.Candidate)
	if err != nil && !errors.Is(err, sfu.ErrTooManyCandidates) {
		return protoErr(CodeCandidateInvalid, "candidate not added: %v", err)
	}
	return err
}

// ownerTimeout bounds the cluster lookup a join waits for.
const ownerTimeout = 2 * time.Second

// join verifies the token, makes the PeerConnection and enters the room.
func (s *session) join(m *Inbound) error {
	start := time.Now()
	grant, err := VerifyToken(s.srv.cfg.Secret, m.Token)
	if err != nil {
		return err
	}
	if m.Room != "" && m.Room != grant.Room {
		return ErrRoomMismatch
	}
	if grant.Role == room.RoleAdmin {
		// Fatal: an admin token is the API tier's, never a media client's.
		return &ProtocolError{Code: CodeForbidden, Message: "admin tokens do not join media", Fatal: true}
	}
	if o := s.srv.cfg.Owners; o != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ownerTimeout)
		url, local, err := o.Owner(ctx, grant.Room)
		cancel()
		switch {
		case err != nil && !s.srv.cfg.Rooms.Has(grant.Room):
			s.log.Warn("join refused: the cluster store cannot say who holds the room", "room", grant.Room, "err", err)
			return protoErr(CodeUnavailable, "the cluster cannot place room %q right now; retry shortly", grant.Room)
		case err == nil && !local:
			return &ProtocolError{Code: CodeRedirect, Message: "another node holds this room; join there", URL: url}
		}
		// With the store down, a room this node already holds goes on.
	}
	sid := newSID()
	log := s.srv.log.With("room", grant.Room, "identity", grant.Identity, "role", string(grant.Role), "sid", sid)
	if grant.Device != "" {
		log = log.With("device", grant.Device)
	}
	p := &room.Participant{SID: sid, Identity: grant.Identity, Device: grant.Device, Name: grant.Name, Role: grant.Role, Record: grant.Record,
		Require: grant.Require, Notify: s, Log: log}
	peer, err := s.srv.cfg.Engine.NewPeer(sfu.PeerConfig{
		ID:      sid,
		Signal:  s,
		Logger:  log,
		Publish: grant.Role.CanPublish(),
		OnLayerDemand: func(t *sfu.Track, active []string) {
			s.send(LayersMessage{Envelope: envelope(TypeLayers, ""), Mid: t.Mid(), TrackID: t.ID(), Active: active})
		},
		OnTrack: func(t *sfu.Track) {
			if !p.Role.CanPublish() && t.Source() != room.SourceTalkback {
				return
			}
			if err := s.rm.Publish(p, t); err != nil {
				log.Debug("publish after leave", "track", t.ID(), "err", err)
			}
		},
		OnTrackEnded: func(t *sfu.Track) { s.rm.Unpublish(p, t) },
		OnICEConnected: func(candidateType string) {
			s.srv.obs.ICEConnection(true, candidateType)
			log.Debug("media connected", "candidate_type", candidateType)
		},
		OnFirstForward: func(*sfu.Track) {
			if s.firstMedia.CompareAndSwap(false, true) {
				s.srv.obs.JoinToMedia(time.Since(start))
			}
		},
		OnConnectionState: func(st sfu.ConnState) {
			s.mediaState(st)
			if st == sfu.ConnFailed {
				s.srv.obs.ICEConnection(false, "unknown")
				log.Warn("media connection failed")
				s.finish(nil, websocket.StatusNormalClosure, "media failed", room.ReasonDisconnect)
			}
		},
	})
	if err != nil {
		return err
	}
	p.Media = peer
	s.p, s.peer = p, peer
	rm, view, err := s.srv.cfg.Rooms.Join(grant.Room, p)
	if err != nil {
		return err
	}
	s.rm = rm
	s.log = log
	s.grant = grant
	s.joined.Store(true)
	s.joinWait.Stop()

	var ice []ICEServer
	if s.srv.cfg.ICEServers != nil {
		ice = s.srv.cfg.ICEServers(grant.Identity, grant.Expires)
	}
	if ice == nil {
		ice = []ICEServer{}
	}
	s.send(Joined{
		Envelope:      envelope(TypeJoined, m.ID),
		Room:          rm.Name(),
		Participant:   room.ParticipantInfo{SID: sid, Identity: grant.Identity, Name: grant.Name, Role: grant.Role, Device: grant.Device},
		Participants:  view,
		ICEServers:    ice,
		ServerVersion: s.srv.cfg.Version,
		Require:       grant.Require,
	})
	s.startEvents()
	log.Info("joined", "remote", s.remote)
	return peer.Start()
}

// newSID names a participant session.
func newSID() string { return "PA_" + randomID() }

// SendOffer implements sfu.Signaler.
func (s *session) SendOffer(sdp string) {
	s.send(SDPMessage{Envelope: envelope(TypeOffer, ""), SDP: sdp})
}

// SendAnswer implements sfu.Signaler.
func (s *session) SendAnswer(sdp string) {
	s.send(SDPMessage{Envelope: envelope(TypeAnswer, ""), SDP: sdp})
}

// SendCandidate implements sfu.Signaler.
func (s *session) SendCandidate(c sfu.Candidate) {
	s.send(CandidateMessage{Envelope: envelope(TypeCandidate, ""), Candidate: c})
}

// ParticipantJoined implements room.Notifier.
func (s *session) ParticipantJoined(p room.ParticipantInfo) {
	s.send(ParticipantMessage{Envelope: envelope(TypeParticipantJoined, ""), Participant: p})
}

// ParticipantLeft implements room.Notifier.
func (s *session) ParticipantLeft(p room.ParticipantInfo, reason string) {
	s.send(ParticipantMessage{Envelope: envelope(TypeParticipantLeft, ""), Participant: p, Reason: reason})
}

// TrackPublished implements room.Notifier.
func (s *session) TrackPublished(p room.ParticipantInfo, t room.TrackInfo) {
	s.send(TrackMessage{Envelope: envelope(TypeTrackPublished, ""), ParticipantSID: p.SID, Identity: p.Identity, Track: t})
}

// TrackUnpublished implements room.Notifier.
func (s *session) TrackUnpublished(p room.ParticipantInfo, t room.TrackInfo) {
	s.send(TrackMessage{Envelope: envelope(TypeTrackUnpublished, ""), ParticipantSID: p.SID, Identity: p.Identity, Track: t})
}

// Event implements room.Notifier: one audit event, live, to a proctor.
// Events that come before the joined reply (the proctor's own join) wait
// for it.
func (s *session) Event(e room.Event) {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	msg := EventMessage{Envelope: envelope(TypeEvent, ""), Event: e}
	if !s.eventsLive {
		if len(s.eventsEarly) < maxEarlyEvents {
			s.eventsEarly = append(s.eventsEarly, msg)
		}
		return
	}
	s.send(msg)
}

// maxEarlyEvents bounds the events held for a proctor before its joined
// reply: its own join and whatever the room did in those microseconds.
const maxEarlyEvents = 32

// startEvents sends the events held so far and every later one live.
func (s *session) startEvents() {
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	s.eventsLive = true
	for _, m := range s.eventsEarly {
		s.send(m)
	}
	s.eventsEarly = nil
}

// maxUnacked bounds the unacknowledged messages a session remembers.
const maxUnacked = 100

// violationsPerMinute bounds a student's violation reports: a page
// flapping between hidden and visible must not flood the trail.
const violationsPerMinute = 30

// intervene carries out a proctor's message, flag, note or end about one
// student of the room: an audit event first, then the student is told
// (message, end).
func (s *session) intervene(m *Inbound) error {
	if s.p.Role != room.RoleProctor {
		return protoErr(CodeForbidden, "only a proctor may %s a student", m.Type)
	}
	target := s.rm.Student(*m.Identity)
	if target == nil {
		return protoErr(CodeMalformed, "no student %q in this room", truncate(*m.Identity, 64))
	}
	rooms, name := s.srv.cfg.Rooms, s.rm.Name()
	switch m.Type {
	case TypeMessage:
		seq := rooms.Record(name, room.EventMessage, s.p.Identity, target.Identity, map[string]any{"text": m.Text})
		target.Notify.Intervention(TypeMessage, map[string]any{"message_id": seq, "text": m.Text, "from": s.p.Name})
	case TypeFlag:
		rooms.Record(name, room.EventFlag, s.p.Identity, target.Identity, map[string]any{"text": m.Text})
	case TypeNote:
		rooms.Record(name, room.EventNote, s.p.Identity, target.Identity, map[string]any{"text": m.Text})
	case TypeEnd:
		rooms.Record(name, room.EventEnded, s.p.Identity, target.Identity, map[string]any{"reason": m.Text})
		for _, device := range s.rm.Students(target.Identity) { // the phone too
			device.Notify.Intervention(TypeEnded, map[string]any{"reason": m.Text, "from": s.p.Name})
			device.Notify.Evict(room.ReasonEnded)
		}
	}
	return nil
}

// Intervention implements room.Notifier: a proctor's message or end,
// as this student's client receives it.
func (s *session) Intervention(kind string, d map[string]any) {
	msg := InterventionMessage{Envelope: envelope(kind, "")}
	msg.MessageID, _ = d["message_id"].(int64)
	if kind == TypeMessage && msg.MessageID > 0 {
		s.messagesMu.Lock()
		if s.messages == nil {
			s.messages = map[int64]bool{}
		}
		if len(s.messages) < maxUnacked {
			s.messages[msg.MessageID] = true
		}
		s.messagesMu.Unlock()
	}
	msg.Text, _ = d["text"].(string)
	msg.Reason, _ = d["reason"].(string)
	msg.From, _ = d["from"].(string)
	if talking, ok := d["talking"].(bool); ok {
		msg.Talking = &talking
	}
	msg.StreamID, _ = d["stream_id"].(string)
	s.eventsMu.Lock()
	defer s.eventsMu.Unlock()
	if !s.eventsLive { // during the join: after the joined reply
		if len(s.eventsEarly) < maxEarlyEvents {
			s.eventsEarly = append(s.eventsEarly, msg)
		}
		return
	}
	s.send(msg)
}

// Evict implements room.Notifier: the server ends this session.
func (s *session) Evict(reason string) {
	frame, _ := json.Marshal(LeaveMessage{Envelope: envelope(TypeLeave, ""), Reason: reason})
	status := websocket.StatusNormalClosure
	if reason == room.ReasonShutdown {
		status = websocket.StatusGoingAway
	}
	s.finish(frame, status, reason, reason)
}

// end closes the session for the server's own reasons (shutdown).
func (s *session) end(code, reason string) {
	if s.joined.Load() {
		s.Evict(reason)
		return
	}
	s.reject(protoErr(code, "the server is shutting down"), "")
}
