package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Roles, as the join token's role claim names them.
const (
	roleStudent = "student"
	roleProctor = "proctor"
)

// Session limits.
const (
	// joinWait bounds the wait for joined: the server answers within a
	// few milliseconds unless it is overloaded, which is then a failure.
	joinWait = 15 * time.Second
	// maxEarlyCandidates bounds remote candidates held before the first
	// remote description (the server's own limit is 64).
	maxEarlyCandidates = 64
)

// participant is one synthetic student or proctor. Its session goroutine
// owns the signaling connection's reading and the PeerConnection's
// negotiation; pion's callbacks and teardown touch only what is marked.
type participant struct {
	r        *run
	index    int // in its role's join order
	roomIdx  int
	roomName string
	identity string
	role     string
	student  *student // set for a student
	proctor  *proctor // set for a proctor

	// launched is set by the run before the session starts.
	launched bool
	// Set by the session before they are read elsewhere: joinSent before
	// the join is sent, sid before the student is findable by it.
	joinSent time.Time
	sid      string

	joined    atomic.Bool // joined arrived
	connected atomic.Bool // the PeerConnection reached connected once
	failure   atomic.Pointer[string]

	sig   *signalConn            // set at register, then read-only
	lean  *leanPeer              // the lean client's transport; nil with --client pion
	pc    *webrtc.PeerConnection // set by the session before any callback
	early []webrtc.ICECandidateInit

	// mu guards closed; held while a reader goroutine is added to wg so
	// none starts after shutdown began waiting.
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // readers this PeerConnection needs (RTCP, tracks)
}

// fail records why the participant did not (or no longer) take part;
// the first reason sticks.
func (p *participant) fail(reason string, err error) {
	s := reason
	p.failure.CompareAndSwap(nil, &s)
	p.r.log.Debug("participant failed", "identity", p.identity, "reason", reason, "err", err)
}

// session is the participant's life: dial, join, negotiate, and read
// signaling until the socket closes; then close the PeerConnection and
// wait for its readers. ctx is never cancelled (cancelling a read closes
// the socket); teardown ends the session by closing the socket.
func (p *participant) session(ctx context.Context, joined chan<- struct{}) {
	defer p.r.wg.Done()
	notify := func() {
		if joined != nil {
			joined <- struct{}{}
			joined = nil
		}
	}
	defer notify()
	sig, err := dialSignal(ctx, p.r.wsURL)
	if err != nil {
		reason := "dial"
		if re, ok := errors.AsType[*refusedError](err); ok {
			reason = fmt.Sprintf("dial_http_%d", re.status)
		}
		p.fail(reason, err)
		return
	}
	if !p.r.register(p, sig) {
		sig.ws.CloseNow()
		return
	}
	defer p.shutdown()
	if err := p.join(ctx); err != nil {
		return
	}
	notify()
	handle := p.handle
	if p.lean != nil {
		if err := p.lean.begin(ctx); err != nil {
			p.fail("publish", err)
			return
		}
		handle = p.lean.handle
	} else if !p.startPeerConnection(ctx) {
		return
	}
	for {
		m, err := sig.recv(ctx)
		if err != nil {
			return
		}
		handle(ctx, m)
	}
}

// startPeerConnection opens the pion client's PeerConnection and, for a
// student, publishes; false when that failed (and was counted).
func (p *participant) startPeerConnection(ctx context.Context) bool {
	pc, err := p.r.kit.newPeerConnection()
	if err != nil {
		p.fail("peer_connection", err)
		return false
	}
	p.pc = pc
	p.watch()
	if p.student != nil {
		if err := p.student.publish(ctx); err != nil {
			p.fail("publish", err)
			return false
		}
	}
	return true
}

// join sends the join with a fresh token and waits for joined.
func (p *participant) join(ctx context.Context) error {
	tok, err := mintToken(p.r.cfg.APISecret, p.roomName, p.identity, p.role, p.r.tokenTTL)
	if err != nil {
		p.fail("token", err)
		return err
	}
	p.joinSent = time.Now()
	if err := p.sig.send(ctx, outMsg{Type: typeJoin, Token: tok, Room: p.roomName}); err != nil {
		p.fail("join_write", err)
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	for {
		m, err := p.sig.recv(wctx)
		if err != nil {
			p.fail("join_timeout", err)
			return err
		}
		switch m.Type {
		case typeJoined:
			p.sid = m.Participant.SID
			if p.student != nil {
				p.r.addSID(p.sid, p.student)
			} else {
				p.proctor.noteStudents(m.Participants...)
			}
			p.joined.Store(true)
			return nil
		case typeError:
			p.r.serverError(m.Code)
			err := fmt.Errorf("join refused: %s: %s", m.Code, m.Message)
			p.fail("join_"+m.Code, err)
			return err
		}
	}
}

// watch installs the callbacks every participant's PeerConnection needs.
func (p *participant) watch() {
	p.pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		init := c.ToJSON()
		_ = p.sig.send(p.r.connCtx, outMsg{Type: typeCandidate, Candidate: &init})
	})
	p.pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		switch s {
		case webrtc.PeerConnectionStateConnected:
			if p.connected.CompareAndSwap(false, true) && p.student != nil {
				p.student.start()
			}
		case webrtc.PeerConnectionStateFailed:
			p.fail("ice_failed", nil)
		}
	})
	if p.proctor != nil {
		p.pc.OnTrack(p.proctor.onTrack)
	}
}

// handle applies one server frame.
func (p *participant) handle(ctx context.Context, m inMsg) {
	switch m.Type {
	case typeOffer:
		p.answer(ctx, m.SDP)
	case typeAnswer:
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			p.fail("sdp_answer", err)
			return
		}
		p.flushEarly()
	case typeCandidate:
		p.addCandidate(m.Candidate)
	case typeError:
		// A glare error needs nothing more: the server's crossing offer
		// is answered as it arrives (answer rolls ours back and offers
		// again once stable).
		p.r.serverError(m.Code)
	default:
		p.handleRoom(m)
	}
}

// handleRoom applies a server frame that is the same whichever client
// (pion or lean) carries the media: layers, participants, errors, leave.
func (p *participant) handleRoom(m inMsg) {
	switch m.Type {
	case typeLayers:
		if p.student != nil {
			p.student.setLayers(m.Mid, m.Active)
		}
	case typeParticipantJoined:
		if p.proctor != nil {
			p.proctor.noteStudents(m.Participant)
		}
	case typeParticipantLeft:
		if p.proctor != nil {
			p.proctor.forget(m.Participant.Identity)
		}
	case typeError:
		p.r.serverError(m.Code)
	case typeLeave:
		p.r.log.Debug("server ended the session", "identity", p.identity, "reason", m.Reason)
	}
}

// answer answers a server offer as the polite peer: a crossing offer of
// our own is rolled back first (perfect negotiation).
func (p *participant) answer(ctx context.Context, sdp string) {
	if p.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		if err := p.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeRollback}); err != nil {
			p.fail("sdp_rollback", err)
			return
		}
		if p.student != nil {
			p.student.reoffer = true
		}
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		p.fail("sdp_offer", err)
		return
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		p.fail("sdp_create_answer", err)
		return
	}
	if err := p.pc.SetLocalDescription(ans); err != nil {
		p.fail("sdp_set_answer", err)
		return
	}
	if err := p.sig.send(ctx, outMsg{Type: typeAnswer, SDP: ans.SDP}); err != nil {
		return
	}
	p.flushEarly()
	if p.student != nil && p.student.reoffer {
		p.student.reoffer = false
		if err := p.student.offer(ctx); err != nil {
			p.fail("reoffer", err)
		}
	}
}

// addCandidate applies a trickled server candidate, holding it until a
// remote description exists. Only loopback candidates are used: media
// never leaves this host.
func (p *participant) addCandidate(c *webrtc.ICECandidateInit) {
	if c == nil || c.Candidate == "" || !loopbackCandidate(c.Candidate) {
		return
	}
	if p.pc.RemoteDescription() == nil {
		if len(p.early) < maxEarlyCandidates {
			p.early = append(p.early, *c)
		}
		return
	}
	_ = p.pc.AddICECandidate(*c)
}

func (p *participant) flushEarly() {
	for _, c := range p.early {
		_ = p.pc.AddICECandidate(c)
	}
	p.early = nil
}

// loopbackCandidate reports whether an ICE candidate line's address
// (RFC 8839 §5.1: foundation, component, transport, priority, address)
// is a loopback IP.
func loopbackCandidate(line string) bool {
	f := strings.Fields(strings.TrimPrefix(line, "candidate:"))
	if len(f) < 5 {
		return false
	}
	ip := net.ParseIP(f[4])
	return ip != nil && ip.IsLoopback()
}

// addReader counts one reader goroutine in, unless shutdown has begun.
func (p *participant) addReader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// shutdown closes the PeerConnection and waits for its readers; the
// session's last act.
func (p *participant) shutdown() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	if p.lean != nil {
		p.lean.shutdown()
	}
	if p.pc != nil {
		if err := p.pc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			p.r.log.Debug("close peer connection", "identity", p.identity, "err", err)
		}
	}
	p.wg.Wait()
	p.sig.ws.CloseNow()
}
