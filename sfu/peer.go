package sfu

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// maxEarlyCandidates bounds the remote candidates a Peer holds before the
// first remote description: a browser trickles a handful per interface;
// more is a client bug or abuse, and each costs memory until applied.
const maxEarlyCandidates = 64

// Signaler carries a Peer's side of negotiation to its client. Calls must
// not block: implementations queue the message.
type Signaler interface {
	SendOffer(sdp string)
	SendAnswer(sdp string)
	SendCandidate(c Candidate)
}

// PeerConfig describes one participant's PeerConnection.
type PeerConfig struct {
	// ID names the peer; its published tracks carry it as stream id.
	ID     string
	Signal Signaler
	Logger *slog.Logger
	// OnTrack is called when the client starts sending a new track, on
	// that track's own goroutine, before any packet is forwarded.
	OnTrack func(*Track)
	// OnTrackEnded is called once the track's reader has stopped.
	OnTrackEnded func(*Track)
	// OnConnectionState reports the PeerConnection's state changes.
	OnConnectionState func(ConnState)
	// OnICEConnected is called once, when the connection first comes up,
	// with the type of the client's selected candidate (host, srflx,
	// prflx, relay): how the client reached the server.
	OnICEConnected func(remoteCandidateType string)
	// OnFirstForward is called once per published track, on its reader,
	// when its first packet has been written to a subscriber.
	OnFirstForward func(*Track)
	// Publish says the client sends media: its PeerConnection gets the
	// publisher's codecs and interceptors (see Engine.newAPI).
	Publish bool
	// OnLayerDemand tells a publisher which simulcast layers (by RID) of
	// a video track someone watches; the client should pause the others.
	// It must not block.
	OnLayerDemand func(t *Track, active []string)
}

// Peer is one participant's PeerConnection: it receives what the client
// publishes and sends the tracks it is subscribed to. The server is the
// impolite side of perfect negotiation.
type Peer struct {
	id  string
	e   *Engine
	pc  *webrtc.PeerConnection
	cfg PeerConfig
	log *slog.Logger

	// mu guards the fields below and serialises every SDP operation on pc.
	mu           sync.Mutex
	started      bool                      // server-initiated offers allowed
	offerPending bool                      // our offer awaits the client's answer
	renegotiate  bool                      // subscriptions changed since our last offer
	early        []webrtc.ICECandidateInit // remote candidates before a remote description
	subs         map[string]*subscription  // by source track id
	sources      map[string]string         // mid → source label, from the client's offer
	published    map[*webrtc.RTPReceiver]*Track
	closed       bool
	done         chan struct{} // closed by Close: stops the bandwidth loop

	// remb is the subscriber's latest receiver-estimated maximum bitrate
	// (bits/s), 0 until one arrives.
	remb atomic.Uint64

	// cmu orders local candidates after the description they belong to:
	// a client (a browser too) refuses a candidate that arrives before
	// its remote description, and a relay-only client then never
	// permits the server's address on its TURN allocation.
	cmu       sync.Mutex
	described bool        // a local description was sent
	held      []Candidate // candidates gathered before that

	wg sync.WaitGroup // track readers and RTCP readers
}

type subscription struct {
	down   *DownTrack
	sender *webrtc.RTPSender
}

// NewPeer makes a PeerConnection on the Engine's shared sockets.
func (e *Engine) NewPeer(cfg PeerConfig) (*Peer, error) {
	if cfg.Signal == nil {
		return nil, errors.New("sfu: PeerConfig.Signal is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = e.log
	}
	api, err := e.newAPI(cfg.Publish)
	if err != nil {
		return nil, fmt.Errorf("sfu: interceptors: %w", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	p := &Peer{
		id:        cfg.ID,
		e:         e,
		pc:        pc,
		cfg:       cfg,
		log:       cfg.Logger,
		subs:      make(map[string]*subscription),
		sources:   make(map[string]string),
		published: make(map[*webrtc.RTPReceiver]*Track),
		done:      make(chan struct{}),
	}
	e.counter.peers.Add(1)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			j := c.ToJSON()
			p.sendCandidate(Candidate{Candidate: j.Candidate, SDPMid: j.SDPMid, SDPMLineIndex: j.SDPMLineIndex, UsernameFragment: j.UsernameFragment})
		}
	})
	// pion calls the state handler on a new goroutine for each change, so
	// two calls can overlap: the first connection is counted once.
	var connected atomic.Bool
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		p.log.Debug("peer connection state", "state", s.String())
		if s == webrtc.PeerConnectionStateConnected && connected.CompareAndSwap(false, true) {
			if cfg.OnICEConnected != nil {
				cfg.OnICEConnected(p.remoteCandidateType())
			}
		}
		if cfg.OnConnectionState != nil {
			cfg.OnConnectionState(connState(s))
		}
	})
	pc.OnTrack(p.onTrack)
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
	for mid, src := range sources {
		p.sources[mid] = src
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("sfu: apply offer: %w", err)
	}
	p.flushEarlyLocked()
	answer, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("sfu: create answer: %w", err)
	}
	if err := p.pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("sfu: set answer: %w", err)
	}
	p.cfg.Signal.SendAnswer(answer.SDP)
	p.releaseCandidates()
	return p.negotiateLocked()
}

// HandleAnswer applies the client's answer to the server's offer.
func (p *Peer) HandleAnswer(sdp string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if !p.offerPending {
		return errors.New("sfu: answer without an offer")
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return fmt.Errorf("sfu: apply answer: %w", err)
	}
	p.offerPending = false
	p.flushEarlyLocked()
	return p.negotiateLocked()
}

// AddCandidate adds a trickled remote ICE candidate. An empty candidate
// (end of candidates) is accepted and ignored.
func (p *Peer) AddCandidate(cand Candidate) error {
	c := webrtc.ICECandidateInit{Candidate: cand.Candidate, SDPMid: cand.SDPMid, SDPMLineIndex: cand.SDPMLineIndex, UsernameFragment: cand.UsernameFragment}
	if strings.TrimSpace(c.Candidate) == "" {
		return nil
	}
	// Parse now, so a malformed candidate is refused when it arrives,
	// not silently dropped when the early queue is applied.
	if _, err := ice.UnmarshalCandidate(c.Candidate); err != nil {
		return fmt.Errorf("sfu: parse candidate: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.pc.RemoteDescription() == nil {
		if len(p.early) >= maxEarlyCandidates {
			return ErrTooManyCandidates
		}
		p.early = append(p.early, c)
		return nil
	}
	if err := p.pc.AddICECandidate(c); err != nil {
		return fmt.Errorf("sfu: add candidate: %w", err)
	}
	return nil
}

func (p *Peer) flushEarlyLocked() {
	for _, c := range p.early {
		if err := p.pc.AddICECandidate(c); err != nil {
			p.log.Debug("early candidate rejected", "err", err)
		}
	}
	p.early = nil
}

// Subscribe starts sending t to this peer at the given quality (for
// simulcast video; other tracks have one layer). The transceiver is added
// now; packets flow once the client has answered the resulting offer.
func (p *Peer) Subscribe(t *Track, quality int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if _, ok := p.subs[t.id]; ok {
		return nil
	}
	down := newDownTrack(t, quality, &p.e.counter, &p.e.counter.layerSwitches)
	sender, err := p.pc.AddTrack(down)
	if err != nil {
		return fmt.Errorf("sfu: add track %s: %w", t.id, err)
	}
	t.addSubscriber(down)
	t.updateDemand()
	p.subs[t.id] = &subscription{down: down, sender: sender}
	p.wg.Add(1)
	go p.readSenderRTCP(sender, down)
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
	t.updateDemand()
	if p.closed {
		return nil
	}
	if err := p.pc.RemoveTrack(s.sender); err != nil {
		return fmt.Errorf("sfu: remove track %s: %w", t.id, err)
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
	// A publisher offers first (its camera): an offer of ours before its
	// first one would cross it. What it must receive (a proctor's
	// talk-back) is offered right after its first offer is answered.
	if p.cfg.Publish && p.pc.RemoteDescription() == nil {
		return nil
	}
	if p.pc.SignalingState() != webrtc.SignalingStateStable {
		return nil
	}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("sfu: create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("sfu: set offer: %w", err)
	}
	p.renegotiate = false
	p.offerPending = true
	p.cfg.Signal.SendOffer(offer.SDP)
	p.releaseCandidates()
	return nil
}

// sendCandidate signals a local candidate, or holds it until the first
// local description has gone out.
func (p *Peer) sendCandidate(c Candidate) {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if !p.described {
		p.held = append(p.held, c)
		return
	}
	p.cfg.Signal.SendCandidate(c)
}

// releaseCandidates is called after a local description was signalled.
func (p *Peer) releaseCandidates() {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.described {
		return
	}
	p.described = true
	for _, c := range p.held {
		p.cfg.Signal.SendCandidate(c)
	}
	p.held = nil
}

// onTrack starts the reader of a track (or a simulcast layer of one) the
// client began to publish. The first layer of a receiver makes the Track
// and announces it; later layers join it.
func (p *Peer) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	t, known := p.published[recv]
	if !known {
		source, mid := p.sourceLocked(recv, remote.Kind())
		t = newTrack(newID("TR_"), p.id, source, remote, p.pc.WriteRTCP, p.e.pliGap, &p.e.counter)
		t.mid = mid
		t.onFirstForward = p.cfg.OnFirstForward
		t.onDemand = p.cfg.OnLayerDemand
		for _, tr := range recv.Tracks() { // made from the SDP, before any packet
			if tr.RID() != "" {
				t.declared = append(t.declared, tr.RID())
			}
		}
		p.published[recv] = t
	}
	l, ok := t.addLayer(remote)
	if !ok {
		p.mu.Unlock()
		p.log.Warn("duplicate simulcast layer ignored", "track", t.id, "rid", remote.RID())
		return
	}
	p.wg.Add(2)
	go p.drainReceiverRTCP(recv, l.rid)
	p.mu.Unlock()

	p.log.Debug("track layer published", "track", t.id, "kind", t.kind.String(), "source", t.source, "rid", l.rid, "codec", t.codec.MimeType)
	go func() {
		defer p.wg.Done()
		// A track is registered with the Engine (its counts and the
		// tracks-in figure) once however many simulcast layers it has:
		// from its first layer's start to its last layer's end.
		if !known {
			p.e.addTrack(t)
			if p.cfg.OnTrack != nil {
				p.cfg.OnTrack(t)
			}
		}
		if t.run(l) {
			p.e.retireTrack(t)
			if p.cfg.OnTrackEnded != nil {
				p.cfg.OnTrackEnded(t)
			}
		}
	}()
}

// sourceLocked names what a received track carries, and its mid: the
// label the client gave the mid, else camera for video and microphone
// for audio.
func (p *Peer) sourceLocked(recv *webrtc.RTPReceiver, kind webrtc.RTPCodecType) (source, mid string) {
	for _, tr := range p.pc.GetTransceivers() {
		if tr.Receiver() == recv {
			mid = tr.Mid()
			if src, ok := p.sources[mid]; ok {
				return src, mid
			}
		}
	}
	if kind == webrtc.RTPCodecTypeAudio {
		return "microphone", mid
	}
	return "camera", mid
}

// readSenderRTCP drains the subscriber's RTCP for one down-track, so the
// interceptors see its reports; answers NACKs from the layer caches;
// turns PLI/FIR into keyframe requests to the publisher; and meters
// reception reports and REMB.
func (p *Peer) readSenderRTCP(sender *webrtc.RTPSender, d *DownTrack) {
	defer p.wg.Done()
	t := d.src
	meter := reportMeter{clockRate: t.codec.ClockRate}
	ssrc := uint32(0)
	if params := sender.GetParameters(); len(params.Encodings) > 0 {
		ssrc = uint32(params.Encodings[0].SSRC)
	}
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		now := time.Now()
		for _, pkt := range pkts {
			switch pkt := pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				t.RequestKeyframe(d.want())
			case *rtcp.TransportLayerNack:
				if pkt.MediaSSRC != ssrc {
					continue
				}
				for _, pair := range pkt.Nacks {
					pair.Range(func(seq uint16) bool {
						p.e.counter.nacks.Add(1)
						d.resend(seq)
						return true
					})
				}
			case *rtcp.ReceiverEstimatedMaximumBitrate:
				p.remb.Store(uint64(pkt.Bitrate))
			case *rtcp.ReceiverReport:
				for _, rr := range pkt.Reports {
					if rr.SSRC == ssrc {
						meter.observe(rr, now, &p.e.counter, p.e.obs)
					}
				}
			}
		}
	}
}

// remoteCandidateType is the type of the client's side of the selected
// ICE candidate pair, or "unknown".
func (p *Peer) remoteCandidateType() string {
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Remote == nil {
		return "unknown"
	}
	return pair.Remote.Typ.String()
}

// drainReceiverRTCP reads the publisher's RTCP (sender reports) for one
// layer, so the receive-side interceptors process it and pion's buffers
// never fill. A simulcast layer's RTCP is read by its RID.
func (p *Peer) drainReceiverRTCP(recv *webrtc.RTPReceiver, rid string) {
	defer p.wg.Done()
	for {
		var err error
		if rid == "" {
			_, _, err = recv.ReadRTCP()
		} else {
			_, _, err = recv.ReadSimulcastRTCP(rid)
		}
		if err != nil {
			return
		}
	}
}

// Close closes the PeerConnection and waits for its readers to stop.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	for id, s := range p.subs {
		s.down.src.removeSubscriber(s.down)
		delete(p.subs, id)
	}
	p.mu.Unlock()
	err := p.pc.Close()
	p.wg.Wait()
	p.e.counter.peers.Add(-1)
	return err
}

// newID returns prefix plus 12 random base32 characters (60 bits).
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:12]
}

// connState maps pion's PeerConnection state onto the media plane's own.
func connState(s webrtc.PeerConnectionState) ConnState {
	switch s {
	case webrtc.PeerConnectionStateConnecting:
		return ConnConnecting
	case webrtc.PeerConnectionStateConnected:
		return ConnConnected
	case webrtc.PeerConnectionStateDisconnected:
		return ConnDisconnected
	case webrtc.PeerConnectionStateFailed:
		return ConnFailed
	case webrtc.PeerConnectionStateClosed:
		return ConnClosed
	}
	return ConnNew
}
