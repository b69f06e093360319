package sfu

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/invigil/invigil/sfu/internal/mmsg"
)

// ICE-TCP (RFC 6544), passive only: a client whose network blocks UDP
// connects to the node's TCP port and frames every packet with a 2-byte
// length (RFC 4571 §2). One goroutine reads each connection and runs what
// it reads to completion, as a UDP reader does; a second writes what the
// node sends, from a bounded backlog with a drop policy, so a client whose
// link stops draining costs the node memory up to that bound and holds
// back nobody else.

const (
	// tcpFirstFrameWithin bounds how long a new connection may take to
	// send its first frame, which must be a valid check.
	tcpFirstFrameWithin = 10 * time.Second
	// tcpWriteTimeout is how long one write may block before the
	// connection is given up: a client not draining for that long has
	// lost its link, and the session goes disconnected.
	tcpWriteTimeout = 5 * time.Second
	// Backlog budgets, in bytes queued for the client. Above the video
	// budget new video is dropped (each down-track then waits for a
	// keyframe, so the picture resumes cleanly); above the audio budget
	// audio and RTCP are dropped too; control (STUN, DTLS) only when the
	// ring is full. 128 KiB is ~0.2 s of a proctor's 25-student grid at
	// 4.5 Mb/s: past that the link is not keeping up.
	tcpVideoBacklog = 128 << 10
	tcpAudioBacklog = 192 << 10
	tcpRing         = 256 << 10
	// tcpUnsent bounds what the kernel holds unsent for the client
	// (boundUnsent), so the backlog above, and its drop policy, is where
	// a slow link's packets wait.
	tcpUnsent = 32 << 10
)

// serveTCP accepts ICE-TCP connections until the listener closes, then
// closes those still open and waits for their goroutines.
func (e *Engine) serveTCP(ln net.Listener) {
	var wg sync.WaitGroup
	var mu sync.Mutex // guards open
	open := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: don't spin
			continue
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.handleTCP(c)
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
}

// tcpConn is one ICE-TCP connection and its send backlog.
type tcpConn struct {
	e      *Engine
	conn   net.Conn
	remote netip.AddrPort

	// mu guards the ring: frames (length-prefixed) between tail and head
	// in a byte stream of which ring holds the last len(ring) bytes;
	// wrap is where the writer jumps back to 0.
	mu         sync.Mutex
	ring       []byte
	head, tail int
	wrap       int // -1: none
	queued     int
	closed     bool
	wake       chan struct{}
	done       chan struct{}
}

func newTCPConn(e *Engine, c net.Conn) *tcpConn {
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return &tcpConn{e: e, conn: c, remote: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		ring: make([]byte, tcpRing), wrap: -1, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// handleTCP serves one connection: its first frame must be a check with a
// session's credentials; then every frame goes to that session.
func (e *Engine) handleTCP(c net.Conn) {
	tc := newTCPConn(e, c)
	defer tc.close()
	buf := make([]byte, 2+maxPacket)
	_ = c.SetReadDeadline(time.Now().Add(tcpFirstFrameWithin))
	n, err := readFrame(c, buf)
	if err != nil || classify(buf[:n]) != kindSTUN {
		return
	}
	p := e.peerForCheck(buf[:n])
	if p == nil {
		e.counter.stunRefused.Add(1)
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if err := boundUnsent(c); err != nil {
		e.log.Warn("ICE-TCP: cannot bound the kernel's send queue; a stalled client's packets wait there, undropped", "err", err)
	}
	w, err := mmsg.NewWriter(e.loops[0].conn, senderSlots)
	if err != nil {
		return
	}
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		tc.writeLoop()
	}()
	defer func() { tc.close(); <-writer }()
	s := newSender(e, e.loops[0].conn, w, senderSlots)
	if !p.stunIn(s, buf[:n], tc.remote, tc, time.Now().UnixNano()) {
		return
	}
	s.flush()
	for {
		n, err := readFrame(c, buf)
		if err != nil || p.gone.Load() {
			return
		}
		p.receive(s, buf[:n], tc.remote, tc, time.Now().UnixNano())
		s.flush()
	}
}

// readFrame reads one RFC 4571 frame into buf and returns its length.
// A frame longer than buf is a protocol error.
func readFrame(r io.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n == 0 || n > len(buf) {
		return 0, errors.New("sfu: ICE-TCP frame of a bad length")
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return 0, err
	}
	return n, nil
}

// send queues one packet for the client, framed, and reports whether it
// was taken: class decides what gives way when the backlog is long.
func (c *tcpConn) send(b []byte, class sendClass) bool {
	need := 2 + len(b)
	c.mu.Lock()
	reason := dropReason(-1)
	switch {
	case c.closed:
		c.mu.Unlock()
		return false
	case class == classVideo && c.queued+need > tcpVideoBacklog:
		reason = dropVideoBacklog
	case (class == classAudio || class == classRTCP) && c.queued+need > tcpAudioBacklog:
		reason = dropAudioBacklog
	case !c.roomLocked(need):
		reason = dropAudioBacklog
	}
	if reason >= 0 {
		c.mu.Unlock()
		c.e.counter.drops[reason].Add(1)
		return false
	}
	binary.BigEndian.PutUint16(c.ring[c.head:], uint16(len(b)))
	copy(c.ring[c.head+2:], b)
	c.head += need
	c.queued += need
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// roomLocked makes room for need contiguous bytes at head, wrapping to
// the start of the ring when the end is short, and reports whether there
// was room. Between tail and head (or, wrapped, between tail and wrap and
// from 0 to head) lie the queued frames.
func (c *tcpConn) roomLocked(need int) bool {
	if c.queued == 0 && c.wrap < 0 { // empty, and no write in flight
		c.head, c.tail = 0, 0
	}
	if c.wrap < 0 {
		if c.head+need <= len(c.ring) {
			return true
		}
		if need < c.tail { // the start is free up to tail
			c.wrap, c.head = c.head, 0
			return true
		}
		return false
	}
	return c.head+need < c.tail
}

// writeLoop writes the backlog, in as large pieces as lie contiguous in
// the ring, each with a deadline.
func (c *tcpConn) writeLoop() {
	defer c.close()
	for {
		c.mu.Lock()
		for c.queued == 0 && !c.closed {
			c.mu.Unlock()
			select {
			case <-c.wake:
			case <-c.done:
			}
			c.mu.Lock()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		if c.wrap >= 0 && c.tail == c.wrap {
			c.tail, c.wrap = 0, -1
		}
		end := c.head
		if c.wrap >= 0 {
			end = c.wrap
		}
		chunk := c.ring[c.tail:end]
		c.mu.Unlock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
		n, err := c.conn.Write(chunk)
		c.mu.Lock()
		c.tail += n
		c.queued -= n
		c.mu.Unlock()
		if err != nil {
			c.e.counter.drops[dropTCPStalled].Add(1)
			return
		}
	}
}

// close ends the connection; its reader and writer return.
func (c *tcpConn) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	_ = c.conn.Close()
}
