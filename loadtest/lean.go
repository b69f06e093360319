package loadtest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/loadtest/internal/lanes"
	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"
)

// The lean client (--client lean): every participant's ICE, DTLS and
// SRTP of the load generator's own, on one shared UDP socket
// (internal/lanes) and a handful of goroutines for all of them: one
// receive loop (recvmmsg; the participant by destination address; SRTP
// decrypted in place; loss and delay counted), one pacer (lean_pacer.go:
// every due frame of every student, encrypted into sendmmsg batches), and
// one control loop (ICE checks and consent). Only the DTLS handshakes
// have a goroutine each, while they run (pion/dtls's own).
//
// Each participant sends from its own address in 127.0.0.0/8, so the
// node, which tells clients apart by address, sees a distinct client per
// participant, as with a browser per tab.

// Lean client timing.
const (
	// controlTick is the control loop's period: ICE check
	// retransmissions and consent are timed to it.
	controlTick = 20 * time.Millisecond
	// checkRetransmit is how often an unanswered ICE check is sent again
	// (RFC 8445 §14.3 paces new checks at 50 ms; a lost one on loopback
	// is a node too busy to answer, so a slower retry is kinder).
	checkRetransmit = 100 * time.Millisecond
	// iceTimeout gives up on a participant whose checks go unanswered.
	iceTimeout = 15 * time.Second
	// consentEvery is how often a connected participant renews consent
	// (RFC 7675 §5.1: every 5 s); the node stops sending without it.
	consentEvery = 5 * time.Second
	// reportEvery is how often RTCP reports go (RFC 3550 §6.2 allows
	// far less; browsers send about this often).
	reportEvery = time.Second
)

// Lean participant states.
const (
	peerIdle int32 = iota
	peerChecking
	peerHandshake
	peerConnected
	peerFailed
)

// leanKit is the lean client of one run: the shared socket, the DTLS
// certificate and the participants by address.
type leanKit struct {
	r           *run
	conn        *lanes.Conn
	cert        tls.Certificate
	fingerprint string
	peers       []*leanPeer // by address index, fixed before start
	pacer       *pacer

	stopMedia chan struct{}  // closed to stop the pacer and the control loop
	media     sync.WaitGroup // the pacer and the control loop
	recvDone  chan struct{}  // closed when the receive loop ends

	unknown       atomic.Int64 // datagrams for no participant or from elsewhere
	decryptErrors atomic.Int64
	unknownSSRC   atomic.Int64
}

func newLeanKit(r *run) (*leanKit, error) {
	conn, err := lanes.Listen()
	if err != nil {
		return nil, err
	}
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("certificate: %w", err)
	}
	k := &leanKit{r: r, conn: conn, cert: cert, fingerprint: fingerprintOf(cert.Certificate[0]),
		stopMedia: make(chan struct{}), recvDone: make(chan struct{})}
	w, err := conn.NewWriter(lanes.MaxBatch)
	if err != nil {
		conn.Close()
		return nil, err
	}
	k.pacer = newPacer(k, w)
	return k, nil
}

// leanAddr is the address of participant i: 127.1.0.1 onwards.
func leanAddr(i int) netip.Addr {
	v := uint32(i + 1)
	return netip.AddrFrom4([4]byte{127, 1 + byte(v>>16), byte(v >> 8), byte(v)})
}

// leanIndex is leanAddr's inverse, -1 for an address outside the range.
func leanIndex(a netip.Addr) int {
	if !a.Is4() {
		return -1
	}
	b := a.As4()
	if b[0] != 127 || b[1] < 1 {
		return -1
	}
	return int(b[1]-1)<<16 | int(b[2])<<8 | int(b[3]) - 1
}

func (k *leanKit) peerAt(a netip.Addr) *leanPeer {
	i := leanIndex(a)
	if i < 0 || i >= len(k.peers) {
		return nil
	}
	return k.peers[i]
}

// newPeer makes participant p's lean transport; call before start.
func (k *leanKit) newPeer(p *participant) *leanPeer {
	i := len(k.peers)
	var sid, tie [8]byte
	_, _ = rand.Read(sid[:])
	_, _ = rand.Read(tie[:])
	lp := &leanPeer{k: k, p: p, local: leanAddr(i), ufrag: randomToken(16), pwd: randomToken(32),
		sessionID: binary.BigEndian.Uint64(sid[:]) >> 2, ssrc: randomSSRC(), tieBreaker: binary.BigEndian.Uint64(tie[:])}
	if p.student != nil {
		lp.st = newLeanStudent(lp, k.r.layers)
	}
	k.peers = append(k.peers, lp)
	p.lean = lp
	return lp
}

// start runs the receive loop, the pacer and the control loop.
func (k *leanKit) start() {
	go k.receive()
	k.media.Add(2)
	go func() {
		defer k.media.Done()
		k.pacer.loop(k.stopMedia)
	}()
	go func() {
		defer k.media.Done()
		k.control(k.stopMedia)
	}()
}

// stopSending stops the pacer and the control loop and waits for them.
func (k *leanKit) stopSending() {
	close(k.stopMedia)
	k.media.Wait()
}

// close closes the socket, which ends the receive loop, and waits for
// it. Call after every participant has shut down.
func (k *leanKit) close() {
	k.conn.Close()
	<-k.recvDone
}

// leanPeer is one participant's lean transport.
type leanPeer struct {
	k         *leanKit
	p         *participant
	local     netip.Addr
	ufrag     string
	pwd       string
	sessionID uint64
	ssrc      uint32 // the RTCP sender SSRC of a proctor
	st        *leanStudent
	pr        *leanProctor
	version   int // descriptions sent; the session goroutine's

	state atomic.Int32
	// Set by the session goroutine before state leaves peerIdle, then
	// read-only. controlling is the ICE role (RFC 8445 §6.1.1): against
	// an ICE-lite node always, against a full agent when this side
	// offered (a student); tieBreaker is the role's for every check.
	node                       netip.AddrPort
	nodeUfrag, nodePwd, nodeFP string
	controlling                bool
	dtlsServer                 bool // the node's setup is active
	tieBreaker                 uint64
	pipe                       *dtlsPipe

	// The session goroutine's until state leaves peerIdle: whether the
	// node's description arrived, and the node's first trickled
	// candidate (RFC 8838) if it came before the description.
	described bool
	early     netip.AddrPort

	// keys is set by the handshake before state becomes peerConnected.
	keys *srtpPair
	// The receive loop's scratch headers.
	rxHdr   rtp.Header
	rxRTCP  rtcp.Header
	rtcpOut [1200]byte

	// txMu guards sending SRTP: keys.tx, the scratch headers, and a
	// student's retransmission rings.
	txMu     sync.Mutex
	txHdr    rtp.Header
	txRTCPHd rtcp.Header

	// The control loop's.
	checkStart, nextCheck, nextConsent int64

	// mu guards dconn and closed.
	mu     sync.Mutex
	dconn  *dtls.Conn
	closed bool
}

// randomToken is n ice-chars (RFC 8445 §5.3): 16 for a ufrag, 32 for a
// password, above the 24 and 128 bits the RFC asks.
func randomToken(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

func randomSSRC() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) | 1
}

// begin starts a joined participant's media: a student offers.
func (lp *leanPeer) begin(ctx context.Context) error {
	if lp.st == nil {
		lp.pr = newLeanProctor(lp)
		return nil
	}
	lp.p.student.vmid = midCamera
	lp.version++
	return lp.p.sig.send(ctx, outMsg{Type: typeOffer, SDP: lp.studentOffer(lp.k.r.layers),
		Tracks: []trackSource{{Mid: midCamera, Source: "camera"}, {Mid: midMic, Source: "microphone"}}})
}

// handle applies one server frame to a lean participant.
func (lp *leanPeer) handle(ctx context.Context, m inMsg) {
	p := lp.p
	switch m.Type {
	case typeAnswer:
		d, err := parseNodeSDP(m.SDP)
		if err != nil {
			p.fail("sdp_answer", err)
			return
		}
		lp.setRemote(d, true)
	case typeOffer:
		d, err := parseNodeSDP(m.SDP)
		if err != nil {
			p.fail("sdp_offer", err)
			return
		}
		if lp.pr == nil {
			// A student is not offered to in a load run; answering
			// would need its own sections kept. Count and go on.
			p.r.serverError("unexpected_offer")
			return
		}
		lp.pr.noteSections(d)
		lp.version++
		if err := p.sig.send(ctx, outMsg{Type: typeAnswer, SDP: lp.proctorAnswer(d, lp.version+1)}); err != nil {
			return
		}
		lp.setRemote(d, false)
	case typeCandidate:
		lp.addCandidate(m.Candidate)
	default:
		p.handleRoom(m)
	}
}

// setRemote takes the node's transport from its first description
// (weOffered: it is the answer to ours) and, once the node's candidate
// is known too, hands the participant to the control loop's ICE checks.
func (lp *leanPeer) setRemote(d *nodeDesc, weOffered bool) {
	if lp.state.Load() != peerIdle || lp.described {
		return
	}
	lp.described = true
	lp.nodeUfrag, lp.nodePwd, lp.nodeFP = d.ufrag, d.pwd, d.fingerprint
	lp.controlling = d.lite || weOffered
	lp.dtlsServer = d.setup == "active"
	switch {
	case d.candidate.IsValid():
		lp.startChecks(d.candidate)
	case lp.early.IsValid():
		lp.startChecks(lp.early)
	}
}

// addCandidate takes a candidate the node trickled, as a full agent
// does instead of listing them in its description: the first UDP host
// candidate on loopback is the one checked (media never leaves this
// host, and one pair is enough).
func (lp *leanPeer) addCandidate(c *webrtc.ICECandidateInit) {
	if c == nil || lp.state.Load() != peerIdle {
		return
	}
	ap, ok := udpLoopbackCandidate(c.Candidate)
	switch {
	case !ok:
	case lp.described:
		lp.startChecks(ap)
	case !lp.early.IsValid():
		lp.early = ap
	}
}

// startChecks sets the node's address and starts the ICE checks.
func (lp *leanPeer) startChecks(node netip.AddrPort) {
	lp.node = node
	k, local := lp.k, lp.local
	lp.pipe = newDTLSPipe(net.UDPAddrFromAddrPort(node), func(b []byte) error { return k.conn.WriteTo(b, local, node) })
	lp.state.Store(peerChecking)
}

// shutdown ends the participant's transport: the pipe closes first, so
// the DTLS close that follows sends nothing.
func (lp *leanPeer) shutdown() {
	lp.mu.Lock()
	lp.closed = true
	c := lp.dconn
	lp.mu.Unlock()
	if lp.pipe != nil {
		lp.pipe.Close()
	}
	if c != nil {
		_ = c.Close()
	}
	lp.state.Store(peerFailed)
}

// handshake runs DTLS once ICE succeeded, on a goroutine the
// participant waits for.
func (lp *leanPeer) handshake() {
	p := lp.p
	if !p.addReader() {
		return
	}
	go func() {
		defer p.wg.Done()
		conn, keys, err := dtlsHandshake(context.Background(), lp.pipe, lp.k.cert, lp.nodeFP, lp.dtlsServer)
		if err != nil {
			lp.state.Store(peerFailed)
			p.fail("dtls", err)
			return
		}
		lp.mu.Lock()
		if lp.closed {
			lp.mu.Unlock()
			_ = conn.Close()
			return
		}
		lp.dconn = conn
		lp.mu.Unlock()
		lp.keys = keys
		lp.state.Store(peerConnected)
		p.connected.Store(true)
		if lp.st != nil {
			lp.k.pacer.add(lp.st)
		}
	}()
}

// bindingRequest is an ICE check toward the node (RFC 8445 §7.2.2) in
// the participant's role: controlling, it nominates with USE-CANDIDATE
// while checking (aggressive nomination: there is one pair); controlled,
// it only checks and the node nominates.
func (lp *leanPeer) bindingRequest(nominate bool) []byte {
	setters := []stun.Setter{stun.BindingRequest, stun.TransactionID,
		stun.NewUsername(lp.nodeUfrag + ":" + lp.ufrag), ice.PriorityAttr(2130706431)}
	if lp.controlling {
		setters = append(setters, ice.AttrControlling(lp.tieBreaker))
		if nominate {
			setters = append(setters, ice.UseCandidate())
		}
	} else {
		setters = append(setters, ice.AttrControlled(lp.tieBreaker))
	}
	setters = append(setters, stun.NewShortTermIntegrity(lp.nodePwd), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		return nil
	}
	return m.Raw
}

// stunIn handles a STUN message from the node: the answer to a check
// (the first one starts DTLS), or the node's own consent check, which
// is answered (RFC 7675).
func (lp *leanPeer) stunIn(b []byte, from netip.AddrPort, w *lanes.Writer) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return
	}
	switch m.Type {
	case stun.BindingSuccess:
		if stun.NewShortTermIntegrity(lp.nodePwd).Check(m) != nil {
			return
		}
		if lp.state.CompareAndSwap(peerChecking, peerHandshake) {
			lp.handshake()
		}
	case stun.BindingRequest:
		var u stun.Username
		if u.GetFrom(m) != nil || u.String() != lp.ufrag+":"+lp.nodeUfrag ||
			stun.NewShortTermIntegrity(lp.pwd).Check(m) != nil {
			return
		}
		resp, err := stun.Build(stun.BindingSuccess, stun.NewTransactionIDSetter(m.TransactionID),
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
			stun.NewShortTermIntegrity(lp.pwd), stun.Fingerprint)
		if err == nil {
			emit(w, resp.Raw, lp.local, from)
		}
	}
}

// emit queues a plain datagram on w.
func emit(w *lanes.Writer, b []byte, from netip.Addr, to netip.AddrPort) {
	if w.Full() {
		_ = w.Flush()
	}
	n := copy(w.Next()[:len(b)], b)
	w.Commit(n, from, to)
}

// sealRTP encrypts one plaintext RTP packet into w; the caller holds
// txMu.
func (lp *leanPeer) sealRTP(w *lanes.Writer, plain []byte) bool {
	if w.Full() {
		_ = w.Flush()
	}
	out, err := lp.keys.tx.EncryptRTP(w.Next(), plain, &lp.txHdr)
	if err != nil {
		return false
	}
	w.Commit(len(out), lp.local, lp.node)
	return true
}

// sealRTCP encrypts one compound RTCP packet into w.
func (lp *leanPeer) sealRTCP(w *lanes.Writer, plain []byte) {
	lp.txMu.Lock()
	defer lp.txMu.Unlock()
	if w.Full() {
		_ = w.Flush()
	}
	out, err := lp.keys.tx.EncryptRTCP(w.Next(), plain, &lp.txRTCPHd)
	if err == nil {
		w.Commit(len(out), lp.local, lp.node)
	}
}

// receive is the receive loop: every datagram of every participant.
func (k *leanKit) receive() {
	defer close(k.recvDone)
	rd, err := k.conn.NewReader(lanes.MaxBatch)
	if err != nil {
		return
	}
	w, err := k.conn.NewWriter(lanes.MaxBatch)
	if err != nil {
		return
	}
	ms := make([]lanes.Message, lanes.MaxBatch)
	mem := make([]byte, lanes.MaxBatch*lanes.MaxDatagram)
	for i := range ms {
		ms[i].Buf = mem[i*lanes.MaxDatagram : (i+1)*lanes.MaxDatagram]
	}
	var batches, datagrams int64
	defer func() {
		k.r.log.Debug("lean receive loop", "batches", batches, "datagrams", datagrams)
	}()
	for {
		n, err := rd.Read(ms)
		if err != nil {
			return
		}
		batches++
		datagrams += int64(n)
		// One reading of the clock per batch: the wall time and the
		// run's clock (r.clock) of it.
		wall := time.Now()
		now := int64(wall.Sub(k.r.epoch))
		for i := range n {
			m := &ms[i]
			lp := k.peerAt(m.Local)
			if lp == nil || m.N == 0 || lp.state.Load() == peerIdle || m.Remote != lp.node {
				k.unknown.Add(1)
				continue
			}
			lp.in(m.Buf[:m.N], m.Remote, wall, now, w)
		}
		_ = w.Flush()
	}
}

// in handles one datagram for the participant (RFC 7983 §7's
// demultiplexing by first byte).
func (lp *leanPeer) in(b []byte, from netip.AddrPort, wall time.Time, now int64, w *lanes.Writer) {
	switch c := b[0]; {
	case c <= 3:
		lp.stunIn(b, from, w)
	case c >= 20 && c <= 63:
		// A node that is the DTLS client may start as soon as its own
		// checks succeed, before ours is answered: the pipe holds the
		// records until the handshake reads them.
		lp.pipe.push(b)
	case c >= 128 && c <= 191 && len(b) >= 12:
		if lp.state.Load() != peerConnected {
			return
		}
		if b[1] >= 192 && b[1] <= 223 {
			lp.rtcpIn(b, now, w)
			return
		}
		if lp.pr != nil {
			lp.pr.rtpIn(b, wall, now, w)
		}
	}
}

// rtcpIn decrypts one compound RTCP packet in place and applies it.
func (lp *leanPeer) rtcpIn(b []byte, now int64, w *lanes.Writer) {
	out, err := lp.keys.rx.DecryptRTCP(b[:0], b, &lp.rxRTCP)
	if err != nil {
		lp.k.decryptErrors.Add(1)
		return
	}
	if lp.st != nil {
		lp.st.rtcpIn(out, w)
	} else if lp.pr != nil {
		lp.pr.rtcpIn(out, now)
	}
}

// control is the control loop: ICE checks until answered, then consent.
func (k *leanKit) control(stop <-chan struct{}) {
	w, err := k.conn.NewWriter(lanes.MaxBatch)
	if err != nil {
		return
	}
	t := time.NewTicker(controlTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := k.r.clock()
		for _, lp := range k.peers {
			switch lp.state.Load() {
			case peerChecking:
				if lp.checkStart == 0 {
					lp.checkStart = now
				}
				if now-lp.checkStart > int64(iceTimeout) {
					lp.state.Store(peerFailed)
					lp.p.fail("ice_timeout", nil)
					continue
				}
				if now >= lp.nextCheck {
					if b := lp.bindingRequest(true); b != nil {
						emit(w, b, lp.local, lp.node)
					}
					lp.nextCheck = now + int64(checkRetransmit)
				}
			case peerConnected:
				if lp.nextConsent == 0 {
					lp.nextConsent = now + int64(consentEvery)
				}
				if now >= lp.nextConsent {
					if b := lp.bindingRequest(false); b != nil {
						emit(w, b, lp.local, lp.node)
					}
					lp.nextConsent = now + int64(consentEvery)
				}
			}
		}
		_ = w.Flush()
	}
}
