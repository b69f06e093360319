package sfu

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
)

// maxEarlyCandidates bounds the remote candidates a Peer takes before the
// first remote description: a browser trickles a handful per interface;
// more is a client bug or abuse.
const maxEarlyCandidates = 64

// Signaler carries a Peer's side of negotiation to its client. Calls must
// not block: implementations queue the message.
type Signaler interface {
	SendOffer(sdp string)
	SendAnswer(sdp string)
	SendCandidate(c Candidate)
}

// PeerConfig describes one participant's media session.
type PeerConfig struct {
	// ID names the peer; its published tracks carry it as stream id.
	ID     string
	Signal Signaler
	Logger *slog.Logger
	// OnTrack is called when the client starts sending a new track,
	// before any packet of it is forwarded. Callbacks run in order on the
	// peer's own goroutine, never on the packet path.
	OnTrack func(*Track)
	// OnTrackEnded is called once the track has ended.
	OnTrackEnded func(*Track)
	// OnConnectionState reports the media connection's state changes.
	OnConnectionState func(ConnState)
	// OnICEConnected is called once, when the connection first comes up,
	// with the type of the client's candidate (host, srflx, prflx,
	// relay): how the client reached the server.
	OnICEConnected func(remoteCandidateType string)
	// OnFirstForward is called once per published track, when its first
	// packet has been written to a subscriber.
	OnFirstForward func(*Track)
	// Publish says the client sends media: a publisher's first offer is
	// its own (the node does not offer to it before).
	Publish bool
	// OnLayerDemand tells a publisher which simulcast layers (by RID) of a
	// video track someone watches; the client should pause the others.
	// It must not block.
	OnLayerDemand func(t *Track, active []string)
}

// Peer is one participant's media session: ICE-lite, DTLS-SRTP and the
// tracks it publishes and receives, on the Engine's shared sockets. The
// node is the impolite side of perfect negotiation.
type Peer struct {
	id    string
	e     *Engine
	cfg   PeerConfig
	log   *slog.Logger
	cname string

	// mu guards negotiation, the fields down to closed, and serialises
	// every SDP operation. It is never taken on the packet path.
	mu            sync.Mutex
	started       bool // server-initiated offers allowed
	offerPending  bool // the node's offer awaits the client's answer
	renegotiate   bool // subscriptions changed since the last offer
	haveRemote    bool // a remote description was applied
	early         int  // candidates before the first remote description
	sections      []*section
	subs          map[string]*subscription // by source track id
	serial        uint64                   // orders subscriptions
	sources       map[string]string        // mid → source label, from signaling
	sessionID     uint64
	version       uint64 // of the node's SDP
	exchanges     uint64 // completed offer/answer exchanges
	ext           extIDs
	fingerprint   string // the client's a=fingerprint
	role          dtlsRole
	roleSet       bool
	closed        bool
	candidatesOut bool // the node's candidates were trickled

	ice   *iceAgent
	sel   atomic.Pointer[path] // the nominated path; nil until ICE nominates one
	state atomic.Int32         // ConnState
	// lastRecv is when the last packet from the client arrived (unix
	// nanos): a browser sends media every 20–33 ms and checks every few
	// seconds, so silence is a lost path.
	lastRecv atomic.Int64
	// lastConsent: see iceAgent.lastConsent (valid checks from the client
	// count too).
	upSince   atomic.Int64 // when the connection last came up (unix nanos)
	connected atomic.Bool  // OnICEConnected has been called

	// DTLS: started once the path is known; keys is set when the
	// handshake is done.
	dtlsOnce sync.Once
	dconn    *dtlsConn
	dtls     *dtls.Conn // guarded by mu after the handshake
	keys     atomic.Pointer[srtpKeys]

	// txMu guards the outbound SRTP context and txHdr: every goroutine
	// that sends to this peer (the readers of the tracks it receives)
	// takes it for one encryption, never across a write.
	txMu  sync.Mutex
	txHdr [2]rtpHeaderScratch // RTP, RTCP

	// rxMu guards rx: what the client sends is handled by the goroutine
	// reading its path, one packet at a time; the lock only orders that
	// goroutine with the clock's RTCP timers and a path change.
	rxMu sync.Mutex
	rx   rxState
	// rxcfg is what negotiation tells the packet path about the client's
	// streams, replaced whole after each exchange.
	rxcfg atomic.Pointer[rxConfig]

	// sends maps the node's outgoing SSRCs to down-tracks, for the
	// client's RTCP; rebuilt under mu when a binding changes.
	sends atomic.Pointer[sendIndex]
	// gone is set by Close: the readers drop the session's packets.
	gone atomic.Bool

	// remb is the subscriber's latest receiver-estimated maximum bitrate
	// (bits/s), 0 until one arrives.
	remb atomic.Uint64

	events *eventQueue
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup
}

// subscription is one track a peer is subscribed to.
type subscription struct {
	down    *DownTrack
	section *section // where it is offered; nil until placed
	serial  uint64
}

// NewPeer makes a media session on the Engine's shared sockets.
func (e *Engine) NewPeer(cfg PeerConfig) (*Peer, error) {
	if cfg.Signal == nil {
		return nil, errors.New("sfu: PeerConfig.Signal is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = e.log
	}
	var sid [8]byte
	_, _ = rand.Read(sid[:])
	p := &Peer{
		id:        cfg.ID,
		e:         e,
		cfg:       cfg,
		log:       cfg.Logger,
		cname:     newID(""),
		subs:      make(map[string]*subscription),
		sources:   make(map[string]string),
		sessionID: binary.BigEndian.Uint64(sid[:]) >> 2, // RFC 8866 §5.2: keep it within 63 bits
		ice:       newICEAgent(),
		events:    newEventQueue(),
		done:      make(chan struct{}),
	}
	p.rx.init(p)
	p.rxcfg.Store(&rxConfig{})
	if err := e.addPeer(p); err != nil {
		return nil, err
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.events.run()
	}()
	if !cfg.Publish {
		p.wg.Add(1)
		go p.bandwidthLoop()
	}
	return p, nil
}

// ID returns the peer's id.
func (p *Peer) ID() string { return p.id }

// Start allows server-initiated offers. The caller starts a peer once the
// client has been told it joined, so an offer never precedes that reply.
func (p *Peer) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started = true
	return p.negotiateLocked()
}

// HandleOffer applies a client offer and sends the answer. sources maps
// the offer's mids to what they carry (camera, microphone, screen).
func (p *Peer) HandleOffer(sdp string, sources map[string]string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.offerPending {
		return ErrGlare
	}
	d, err := parseClientSDP(sdp)
	if err != nil {
		return fmt.Errorf("sfu: apply offer: %w", err)
	}
	setup, role, err := setupFor(d.setup)
	if err != nil {
		return fmt.Errorf("sfu: apply offer: %w", err)
	}
	if err := p.checkTransportLocked(d); err != nil {
		return fmt.Errorf("sfu: apply offer: %w", err)
	}
	for mid, src := range sources {
		if len(mid) <= maxMidBytes && len(src) <= maxSourceBytes {
			p.sources[mid] = src
		}
	}
	stopped, err := p.applyOfferLocked(d)
	if err != nil {
		return fmt.Errorf("sfu: apply offer: %w", err)
	}
	if !p.roleSet {
		p.role, p.roleSet = role, true
	} else if p.role == dtlsClient {
		setup = "active" // the association stands; the roles do not swap
	} else {
		setup = "passive"
	}
	if p.ice.setRemote(d.ice, true) {
		// An ICE restart: checks with the new credentials may come from
		// an address no reader knows yet (the client moved networks).
		p.e.addUfrag(p, p.ice.localCreds().ufrag)
	}
	p.fingerprint = d.fingerprint
	p.haveRemote = true
	p.bindSendsLocked()
	p.endTracksLocked(stopped)
	p.publishRxConfigLocked()
	answer, err := p.writeLocked(true, setup)
	if err != nil {
		return err
	}
	p.exchanges++
	p.cfg.Signal.SendAnswer(answer)
	p.trickleLocked()
	return p.negotiateLocked()
}

// HandleAnswer applies the client's answer to the node's offer.
func (p *Peer) HandleAnswer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if !p.offerPending {
		return errors.New("sfu: answer without an offer")
	}
	d, err := parseClientSDP(sdp)
	if err != nil {
		return fmt.Errorf("sfu: apply answer: %w", err)
	}
	role, err := roleFromAnswer(d.setup)
	if err != nil {
		return fmt.Errorf("sfu: apply answer: %w", err)
	}
	if err := p.checkTransportLocked(d); err != nil {
		return fmt.Errorf("sfu: apply answer: %w", err)
	}
	stopped, err := p.applyAnswerLocked(d)
	if err != nil {
		return fmt.Errorf("sfu: apply answer: %w", err)
	}
	if !p.roleSet {
		p.role, p.roleSet = role, true
	}
	p.ice.setRemote(d.ice, false)
	p.fingerprint = d.fingerprint
	p.haveRemote = true
	p.offerPending = false
	for _, s := range p.sections {
		s.offered = nil
	}
	p.exchanges++
	p.bindSendsLocked()
	p.endTracksLocked(stopped)
	p.publishRxConfigLocked()
	p.startClientDTLSLocked()
	return p.negotiateLocked()
}

// checkTransportLocked refuses a description without what DTLS-SRTP over
// ICE needs, or one that changes the DTLS fingerprint of a running
// association.
func (p *Peer) checkTransportLocked(d *clientDesc) error {
	switch {
	case d.ice.ufrag == "" || d.ice.pwd == "":
		return fmt.Errorf("%w: no ICE credentials", errSDP)
	case d.fingerprint == "":
		return fmt.Errorf("%w: no DTLS fingerprint", errSDP)
	case p.keys.Load() != nil && !strings.EqualFold(d.fingerprint, p.fingerprint):
		return fmt.Errorf("%w: the DTLS fingerprint changed mid-session", errSDP)
	}
	return nil
}

// AddCandidate takes a trickled remote ICE candidate. The node is
// ICE-lite and learns the client's address from its checks, so a
// candidate serves only to name how the client reached the node (its
// type); an empty one (end of candidates) is accepted and ignored.
func (p *Peer) AddCandidate(c Candidate) error {
	if strings.TrimSpace(c.Candidate) == "" {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	if !p.haveRemote {
		if p.early >= maxEarlyCandidates {
			p.mu.Unlock()
			return ErrTooManyCandidates
		}
		p.early++
	}
	p.mu.Unlock()
	return p.ice.addCandidate(strings.TrimPrefix(c.Candidate, "a="))
}

// Subscribe starts sending t to this peer at the given quality (for
// simulcast video; other tracks have one layer). The section is offered
// now; packets flow once the client has answered.
func (p *Peer) Subscribe(t *Track, quality int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, ok := p.subs[t.id]; ok {
		return nil
	}
	d := newDownTrack(t, p, quality)
	p.serial++
	p.subs[t.id] = &subscription{down: d, serial: p.serial}
	t.addSubscriber(d)
	t.updateDemand()
	p.renegotiate = true
	return p.negotiateLocked()
}

// Unsubscribe stops sending t to this peer.
func (p *Peer) Unsubscribe(t *Track) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.subs[t.id]
	if !ok {
		return ErrNotSubscribed
	}
	delete(p.subs, t.id)
	t.removeSubscriber(s.down)
	s.down.unbind()
	t.updateDemand()
	if p.closed {
		return nil
	}
	p.renegotiate = true
	return p.negotiateLocked()
}

// SetQuality changes the quality this peer receives of track id:
// QualityLow for a grid tile, QualityHigh for the focused student,
// QualityOff for a tile out of view. The switch happens on the next
// keyframe of the new layer, which is requested now.
func (p *Peer) SetQuality(trackID string, q int) error {
	if q < QualityOff || q > QualityHigh {
		return fmt.Errorf("sfu: quality %d out of range", q)
	}
	p.mu.Lock()
	s, ok := p.subs[trackID]
	p.mu.Unlock()
	if !ok {
		return ErrNotSubscribed
	}
	s.down.setTarget(q)
	return nil
}

// negotiateLocked sends an offer when subscriptions changed, the peer has
// been started and no offer is outstanding. Changes that arrive while an
// offer is out are folded into the next one, sent when the answer comes.
func (p *Peer) negotiateLocked() error {
	if !p.started || !p.renegotiate || p.offerPending || p.closed {
		return nil
	}
	// A publisher offers first (its camera): an offer of the node's before
	// its first one would cross it. What it must receive (a proctor's
	// talk-back) is offered right after its first offer is answered.
	if p.cfg.Publish && !p.haveRemote {
		return nil
	}
	p.placeSubscriptionsLocked()
	for _, s := range p.sections {
		s.offered = s.down
	}
	offer, err := p.writeLocked(false, "actpass")
	if err != nil {
		return err
	}
	p.renegotiate = false
	p.offerPending = true
	p.cfg.Signal.SendOffer(offer)
	p.trickleLocked()
	return nil
}

// writeLocked renders the node's current description.
func (p *Peer) writeLocked(answer bool, setup string) (string, error) {
	p.version++
	t := localTransport{ice: p.ice.localCreds(), fingerprint: p.e.cert.fingerprint, setup: setup, candidates: p.e.candidates}
	return writeSDP(p.sessionID, p.version, p.linesLocked(answer), t)
}

// trickleLocked signals the node's candidates once, after its first
// description (which carries them too): a client refuses a candidate that
// arrives before its remote description.
func (p *Peer) trickleLocked() {
	if p.candidatesOut {
		return
	}
	p.candidatesOut = true
	mid := ""
	var index uint16
	for i, s := range p.sections {
		if !s.rejected && s.mediaKind() {
			mid, index = s.mid, uint16(i)
			break
		}
	}
	for _, c := range p.e.candidates {
		m, idx := mid, index
		p.cfg.Signal.SendCandidate(Candidate{Candidate: "candidate:" + c, SDPMid: &m, SDPMLineIndex: &idx})
	}
}

// Close ends the session and waits for its goroutines.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.gone.Store(true)
	close(p.done)
	for id, s := range p.subs {
		s.down.src.removeSubscriber(s.down)
		s.down.unbind()
		delete(p.subs, id)
	}
	var mids []string
	for _, s := range p.sections {
		if s.recv {
			mids = append(mids, s.mid)
		}
	}
	p.endTracksLocked(mids)
	conn := p.dtls
	p.mu.Unlock()
	p.setState(ConnClosed)
	p.e.removePeer(p)
	if conn != nil {
		_ = conn.Close()
	}
	if p.dconn != nil {
		_ = p.dconn.Close()
	}
	if sel := p.sel.Load(); sel != nil && sel.tcp != nil {
		sel.tcp.close()
	}
	p.events.close()
	p.wg.Wait()
	return nil
}

// eventQueue runs a peer's callbacks in order on one goroutine, so the
// packet path and negotiation never wait for what the caller does in them.
// It is unbounded: callbacks are per track and per state change, never
// per packet.
type eventQueue struct {
	// mu guards fns and ended.
	mu    sync.Mutex
	fns   []func()
	ended bool
	wake  chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{wake: make(chan struct{}, 1)} }

// post queues fn; after close it runs nothing.
func (q *eventQueue) post(fn func()) {
	q.mu.Lock()
	if q.ended {
		q.mu.Unlock()
		return
	}
	q.fns = append(q.fns, fn)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run executes queued callbacks until close, then those still queued.
func (q *eventQueue) run() {
	for {
		q.mu.Lock()
		fns := q.fns
		q.fns = nil
		ended := q.ended
		q.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
		if ended && len(fns) == 0 {
			return
		}
		if len(fns) > 0 {
			continue
		}
		<-q.wake
	}
}

// close lets run finish what is queued and return.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// newID returns prefix plus 12 random base32 characters (60 bits).
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:12]
}
