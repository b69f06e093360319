package sfu

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/stun/v4"
)

// A Peer's transport: what arrives on its ICE path, the path it sends on,
// the DTLS handshake, its connection state, and the writes of everything
// it sends (SRTP, SRTCP, STUN).

const (
	// disconnectedAfter is how long a connected client may send nothing
	// (no media, no check) before its connection counts as disconnected
	// (the audit trail's disconnect). A browser sends media every 20–33
	// ms and checks every few seconds, so 3 s of silence is a lost path.
	disconnectedAfter = 3 * time.Second
	// failedAfter is how long after that the connection is given up (the
	// session ends; the client must join again).
	failedAfter = 25 * time.Second
	// connectWithin bounds how long a client that has a description may
	// take to connect at all before the session fails.
	connectWithin = 30 * time.Second
)

// maxPacket is the largest datagram the node reads or writes: the largest
// UDP payload on an Ethernet path, which bounds any packet a browser
// sends.
const maxPacket = 1500

// receive handles one datagram the client sent from addr (over tcp, when
// not nil). Only addresses that passed an ICE check reach here.
func (p *Peer) receive(s *sender, b []byte, addr netip.AddrPort, tcp *tcpConn, at int64) {
	switch classify(b) {
	case kindSTUN:
		p.stunIn(s, b, addr, tcp, at)
	case kindDTLS:
		p.lastRecv.Store(at)
		p.dtlsIn(b, addr, tcp)
	case kindRTP:
		p.lastRecv.Store(at)
		p.rtpIn(s, b, at)
	case kindRTCP:
		p.lastRecv.Store(at)
		p.rtcpIn(s, b, at)
	default:
		p.e.counter.malformed.Add(1)
	}
}

// stunIn answers a check or takes a response to the node's own. It
// reports whether the message authenticated: the first one from an
// address is what admits that address at all.
func (p *Peer) stunIn(s *sender, b []byte, addr netip.AddrPort, tcp *tcpConn, at int64) bool {
	var m stun.Message
	m.Raw = append(m.Raw[:0], b...)
	if err := m.Decode(); err != nil {
		p.e.counter.malformed.Add(1)
		return false
	}
	switch m.Type.Class {
	case stun.ClassRequest:
		if m.Type.Method != stun.MethodBinding {
			return false
		}
		resp, nominate, err := p.ice.answer(&m, addr)
		if err != nil {
			p.e.counter.stunRefused.Add(1)
			return false
		}
		p.lastRecv.Store(at)
		p.sendRaw(s, resp, addr, tcp)
		sel := p.sel.Load()
		if nominate || sel == nil || sel.addr == addr && sel.tcp == tcp {
			p.ice.lastConsent.Store(at)
		}
		if nominate || sel == nil {
			p.selectPath(addr, tcp, at)
		}
		return true
	case stun.ClassSuccessResponse:
		if p.ice.response(&m, addr, time.Unix(0, at)) {
			p.lastRecv.Store(at)
			return true
		}
	}
	return false
}

// selectPath makes addr (over tcp) the path the node sends on: the one the
// client nominated, or the first to pass a check before it nominates.
func (p *Peer) selectPath(addr netip.AddrPort, tcp *tcpConn, at int64) {
	old := p.sel.Load()
	if old != nil && old.addr == addr && old.tcp == tcp {
		return
	}
	p.sel.Store(&path{addr: addr, tcp: tcp})
	if old == nil {
		p.setState(ConnConnecting)
		p.mu.Lock()
		p.startClientDTLSLocked()
		p.mu.Unlock()
		return
	}
	p.log.Debug("ICE path changed", "from", old.addr.String(), "to", addr.String(), "tcp", tcp != nil)
	if old.tcp != nil && old.tcp != tcp {
		old.tcp.close()
	}
}

// dtlsIn hands a DTLS record to the handshake, starting it as the DTLS
// server on the client's first record.
func (p *Peer) dtlsIn(b []byte, addr netip.AddrPort, tcp *tcpConn) {
	if p.sel.Load() == nil {
		p.selectPath(addr, tcp, time.Now().UnixNano())
	}
	p.mu.Lock()
	if p.roleSet && p.role == dtlsServer {
		p.startDTLSLocked(dtlsServer)
	}
	c := p.dconn
	p.mu.Unlock()
	if c != nil {
		c.push(b)
	}
}

// startClientDTLSLocked starts the handshake as the DTLS client once both
// the role (from the answer) and the path are known.
func (p *Peer) startClientDTLSLocked() {
	if p.roleSet && p.role == dtlsClient && p.sel.Load() != nil {
		p.startDTLSLocked(dtlsClient)
	}
}

// startDTLSLocked starts the session's one handshake.
func (p *Peer) startDTLSLocked(role dtlsRole) {
	if p.closed {
		return
	}
	p.dtlsOnce.Do(func() {
		p.dconn = newDTLSConn(&net.UDPAddr{}, func(b []byte) error {
			p.sendRaw(nil, b, netip.AddrPort{}, nil)
			return nil
		})
		fingerprint := p.fingerprint
		p.wg.Add(1)
		go p.runDTLS(p.dconn, role, fingerprint)
	})
}

// runDTLS performs the handshake, installs the SRTP keys, and then keeps
// the association open (a client's retransmitted last flight is answered
// by pion/dtls while it reads) until the session ends.
func (p *Peer) runDTLS(c *dtlsConn, role dtlsRole, fingerprint string) {
	defer p.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-p.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	defer cancel()
	conn, keys, err := handshake(ctx, c, role, p.e.cert, fingerprint, p.e.logs)
	if err != nil {
		select {
		case <-p.done:
			return
		default:
		}
		p.e.counter.dtlsFailures.Add(1)
		p.log.Warn("DTLS handshake failed", "err", err)
		p.setState(ConnFailed)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = conn.Close()
		return
	}
	p.dtls = conn
	p.mu.Unlock()
	p.rxMu.Lock()
	p.rx.keys = keys
	p.rxMu.Unlock()
	p.keys.Store(keys)
	now := time.Now().UnixNano()
	p.upSince.Store(now)
	p.ice.lastConsent.Store(now)
	p.setState(ConnConnected)
	if p.connected.CompareAndSwap(false, true) && p.cfg.OnICEConnected != nil {
		typ := "unknown"
		if sel := p.sel.Load(); sel != nil {
			typ = p.ice.candidateType(sel.addr)
			if sel.tcp != nil && typ == "prflx" {
				typ = "host" // ICE-TCP reaches the node's own TCP candidate
			}
		}
		p.events.post(func() { p.cfg.OnICEConnected(typ) })
	}
	buf := make([]byte, maxPacket)
	for {
		if _, err := conn.Read(buf); err != nil {
			return // close_notify or the session's end; ICE timeouts decide the state
		}
	}
}

// setState moves the connection to s and tells the caller, in order.
// Failed and closed are final (closed even over failed).
func (p *Peer) setState(s ConnState) {
	for {
		old := ConnState(p.state.Load())
		if old == s || old == ConnClosed || old == ConnFailed && s != ConnClosed {
			return
		}
		if p.state.CompareAndSwap(int32(old), int32(s)) {
			break
		}
	}
	if fn := p.cfg.OnConnectionState; fn != nil {
		p.events.post(func() { fn(s) })
	}
}

// checkState runs on the Engine's clock: silence makes a connected
// session disconnected and, after failedAfter more, failed; fresh
// packets bring it back; lost consent stops it.
func (p *Peer) checkState(now int64) {
	st := ConnState(p.state.Load())
	last := p.lastRecv.Load()
	switch st {
	case ConnConnected:
		if now-last > int64(disconnectedAfter) {
			p.setState(ConnDisconnected)
		} else if now-p.ice.lastConsent.Load() > int64(consentTimeout) {
			p.log.Warn("ICE consent expired; no longer sending", "after", consentTimeout)
			p.setState(ConnFailed)
		}
	case ConnDisconnected:
		switch {
		case now-last <= int64(disconnectedAfter):
			p.setState(ConnConnected)
		case now-last > int64(disconnectedAfter+failedAfter):
			p.setState(ConnFailed)
		}
	case ConnNew, ConnConnecting:
		p.mu.Lock()
		waiting := p.haveRemote && !p.closed
		p.mu.Unlock()
		if waiting {
			start := p.upSince.Load()
			if start == 0 {
				p.upSince.CompareAndSwap(0, now)
			} else if now-start > int64(connectWithin) {
				p.log.Warn("media never connected", "within", connectWithin)
				p.setState(ConnFailed)
			}
		}
	}
}

// sending reports whether the node may send to the client now: a path is
// chosen, keys are agreed, and consent is fresh (RFC 7675 §5.1).
func (p *Peer) sending() (*path, *srtpKeys) {
	sel := p.sel.Load()
	keys := p.keys.Load()
	if sel == nil || keys == nil {
		return nil, nil
	}
	switch ConnState(p.state.Load()) {
	case ConnFailed, ConnClosed:
		return nil, nil
	}
	return sel, keys
}

// rtpHeaderScratch is a header the encryption parses into, reused.
type rtpHeaderScratch struct {
	h rtp.Header
}

// writeRTP encrypts one RTP packet for the client and queues it on s (or
// writes it now when s is nil). class tells an ICE-TCP backlog what it
// may drop. It reports whether the packet went out.
func (p *Peer) writeRTP(s *sender, h *rtp.Header, payload []byte, class sendClass) bool {
	sel, keys := p.sending()
	if sel == nil {
		p.e.counter.drops[dropNotConnected].Add(1)
		return false
	}
	if s == nil {
		s = p.e.directSender()
		defer p.e.releaseSender(s)
	}
	buf := s.buffer()
	n, err := h.MarshalTo(buf[:cap(buf)])
	if err != nil || n+len(payload)+srtpOverhead > cap(buf) {
		p.e.counter.drops[dropTooLarge].Add(1)
		return false
	}
	copy(buf[n:cap(buf)], payload)
	p.txMu.Lock()
	out, err := keys.tx.EncryptRTP(buf[:0], buf[:n+len(payload)], &p.txHdr[0].h)
	p.txMu.Unlock()
	if err != nil {
		p.e.counter.writeErrors.Add(1)
		return false
	}
	return p.emit(s, out, sel, class)
}

// writeRTPFrame is writeRTP for a payload that lies at raw[off:], after
// at least a header's worth of bytes the caller lets it overwrite (the
// received packet's own header): the outgoing header is written there,
// and the packet is encrypted from that buffer straight into the send
// batch, so the payload is never copied but by the cipher itself.
func (p *Peer) writeRTPFrame(s *sender, h *rtp.Header, raw []byte, off int, class sendClass) bool {
	n := h.MarshalSize()
	if n > off {
		return p.writeRTP(s, h, raw[off:], class)
	}
	sel, keys := p.sending()
	if sel == nil {
		p.e.counter.drops[dropNotConnected].Add(1)
		return false
	}
	if s == nil {
		s = p.e.directSender()
		defer p.e.releaseSender(s)
	}
	plain := raw[off-n:]
	if _, err := h.MarshalTo(plain[:n]); err != nil || len(plain)+srtpOverhead > maxPacket {
		p.e.counter.drops[dropTooLarge].Add(1)
		return false
	}
	buf := s.buffer()
	p.txMu.Lock()
	out, err := keys.tx.EncryptRTP(buf[:0], plain, &p.txHdr[0].h)
	p.txMu.Unlock()
	if err != nil {
		p.e.counter.writeErrors.Add(1)
		return false
	}
	return p.emit(s, out, sel, class)
}

// srtpOverhead is the most SRTP adds to a packet: a 16-byte GCM tag
// (AES-CM with HMAC-SHA1-80 adds 10).
const srtpOverhead = 16

// writeRTCP encrypts one compound RTCP packet for the client (SRTCP adds
// a tag and a 4-byte index, RFC 3711 §3.4) and queues it on s (now when s
// is nil).
func (p *Peer) writeRTCP(s *sender, plain []byte) bool {
	sel, keys := p.sending()
	if sel == nil {
		return false
	}
	if s == nil {
		s = p.e.directSender()
		defer p.e.releaseSender(s)
	}
	buf := s.buffer()
	if len(plain)+srtpOverhead+4 > cap(buf) {
		return false
	}
	n := copy(buf[:cap(buf)], plain)
	p.txMu.Lock()
	out, err := keys.tx.EncryptRTCP(buf[:0], buf[:n], nil)
	p.txMu.Unlock()
	if err != nil {
		p.e.counter.writeErrors.Add(1)
		return false
	}
	return p.emit(s, out, sel, classRTCP)
}

// emit sends a finished datagram (out lies in s's current buffer) on
// the session's path.
func (p *Peer) emit(s *sender, out []byte, sel *path, class sendClass) bool {
	if sel.tcp != nil {
		ok := sel.tcp.send(out, class)
		s.discard()
		return ok
	}
	s.queue(out, sel.addr)
	return true
}

// sendRaw sends b unencrypted (STUN, DTLS) to addr over tcp, or on the
// selected path when addr is the zero value.
func (p *Peer) sendRaw(s *sender, b []byte, addr netip.AddrPort, tcp *tcpConn) {
	if !addr.IsValid() {
		sel := p.sel.Load()
		if sel == nil {
			return
		}
		addr, tcp = sel.addr, sel.tcp
	}
	if tcp != nil {
		tcp.send(b, classControl)
		return
	}
	if s == nil {
		s = p.e.directSender()
		defer p.e.releaseSender(s)
	}
	buf := s.buffer()
	if len(b) > cap(buf) {
		return
	}
	s.queue(buf[:copy(buf[:cap(buf)], b)], addr)
}
