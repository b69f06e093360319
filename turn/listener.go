package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

const (
	// firstReadTimeout bounds how long an accepted TCP or TLS connection
	// may take to complete its TLS handshake and send its first bytes.
	// pion has no such limit; without it an idle connection holds a
	// goroutine and a file descriptor forever. 10 s is pion's own TLS
	// handshake limit.
	firstReadTimeout = 10 * time.Second

	// acceptBackoffMax caps the pause after a transient Accept or
	// ReadFrom error (EMFILE, ENOBUFS). pion ends its loop on any error,
	// which would silently stop the listener, so the wrappers retry.
	acceptBackoffMax = time.Second
)

// tracker counts the goroutines and sockets the server must see finish
// before Close returns: pion's loops (known by their sockets failing),
// client connections (known by pion closing them) and relay sockets.
type tracker struct {
	mu   sync.Mutex    // guards n and idle
	n    int           // live things
	idle chan struct{} // closed while n == 0
}

func newTracker() *tracker {
	t := &tracker{idle: make(chan struct{})}
	close(t.idle)
	return t
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n--; t.n == 0 {
		close(t.idle)
	}
}

// wait returns when nothing is live or ctx ends.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff sleeps before retrying a transient socket error, returning false
// if the server closes meanwhile.
func (s *Server) backoff(delay *time.Duration) bool {
	*delay = min(max(2*(*delay), 5*time.Millisecond), acceptBackoffMax)
	t := time.NewTimer(*delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closing:
		return false
	}
}

func (s *Server) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// packetConn is the client-facing UDP socket handed to pion. It keeps
// pion's read loop alive across transient errors, marks the loop's end
// for Close, and passes responses through the codeFixer.
type packetConn struct {
	net.PacketConn
	s    *Server
	once sync.Once
}

func newPacketConn(pc net.PacketConn, s *Server) *packetConn {
	s.track.add() // pion's read loop
	return &packetConn{PacketConn: pc, s: s}
}

// ReadFrom reads the next client datagram. Its error ends pion's loop, so
// it only returns one once the socket is closed.
func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	var delay time.Duration
	for {
		n, from, err := c.PacketConn.ReadFrom(p)
		if err == nil {
			return n, from, nil
		}
		if errors.Is(err, net.ErrClosed) || c.s.isClosing() || !c.s.backoff(&delay) {
			c.once.Do(c.s.track.done)
			return 0, nil, err
		}
		c.s.log.Debug("turn udp read", "err", err)
	}
}

// WriteTo sends to a client, correcting a refused request's error code.
func (c *packetConn) WriteTo(p []byte, to net.Addr) (int, error) {
	if isResponse(p) {
		q := c.s.codes.response(p, to)
		if _, err := c.PacketConn.WriteTo(q, to); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, to)
}

// listener is a client-facing TCP or TLS listener handed to pion. It
// retries transient Accept errors, wraps TLS itself (pion's own handshake
// has no deadline once the conn is wrapped) and tracks every connection
// so Close can end them: pion's Close closes listeners, not connections.
type listener struct {
	net.Listener
	s    *Server
	tls  *tls.Config // nil for plain TCP
	once sync.Once

	mu    sync.Mutex               // guards conns
	conns map[*clientConn]struct{} // open connections
}

func newListener(l net.Listener, tlsConfig *tls.Config, s *Server) *listener {
	s.track.add() // pion's accept loop
	return &listener{Listener: l, s: s, tls: tlsConfig, conns: make(map[*clientConn]struct{})}
}

// Accept returns the next client connection. Its error ends pion's accept
// loop, so it only returns one once the listener is closed.
func (l *listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		raw, err := l.Listener.Accept()
		if err == nil {
			return l.wrap(raw), nil
		}
		if errors.Is(err, net.ErrClosed) || l.s.isClosing() || !l.s.backoff(&delay) {
			l.once.Do(l.s.track.done)
			return nil, err
		}
		l.s.log.Warn("turn accept", "addr", l.Addr().String(), "err", err)
	}
}

func (l *listener) wrap(raw net.Conn) *clientConn {
	c := &clientConn{Conn: raw, raw: raw, l: l}
	if l.tls != nil {
		c.tls = tls.Server(raw, l.tls)
		c.Conn = c.tls
	}
	_ = raw.SetReadDeadline(time.Now().Add(firstReadTimeout))
	l.s.track.add()
	l.mu.Lock()
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	if l.s.isClosing() {
		_ = raw.Close() // accepted while Close ran closeConns
	}
	return c
}

// closeConns closes every open connection's socket, which makes pion's
// per-connection goroutine fail its read, clean up and Close the conn.
func (l *listener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.raw.Close()
	}
}

// clientConn is one client's TCP or TLS connection: a TURN control
// connection, or an RFC 6062 data connection after ConnectionBind.
type clientConn struct {
	net.Conn           // raw, or tls over raw
	raw      net.Conn  // the accepted TCP connection
	tls      *tls.Conn // nil for plain TCP
	l        *listener
	started  bool // first read done; only pion's reading goroutine touches it
	once     sync.Once
}

// Read completes the TLS handshake and the first read within
// firstReadTimeout, then reads without deadline.
func (c *clientConn) Read(p []byte) (int, error) {
	if c.started {
		return c.Conn.Read(p)
	}
	if c.tls != nil {
		ctx, cancel := context.WithTimeout(context.Background(), firstReadTimeout)
		err := c.tls.HandshakeContext(ctx)
		cancel()
		if err != nil {
			c.l.s.log.Debug("turn tls handshake", "client", c.RemoteAddr().String(), "err", err)
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	if err == nil {
		c.started = true
		_ = c.raw.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Write sends to the client, correcting a refused request's error code.
// pion writes each STUN message or ChannelData frame with one Write.
func (c *clientConn) Write(p []byte) (int, error) {
	if isResponse(p) {
		q := c.l.s.codes.response(p, c.RemoteAddr())
		if _, err := c.Conn.Write(q); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Close closes the connection; pion calls it when its goroutine for the
// connection ends. It returns nil: a failed TLS close_notify to a client
// that has gone is not worth pion's error line.
func (c *clientConn) Close() error {
	c.once.Do(func() {
		if err := c.Conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			c.l.s.log.Debug("turn connection close", "client", c.RemoteAddr().String(), "err", err)
		}
		if c.tls != nil {
			_ = c.raw.Close() // tls.Conn.Close leaves it open when close_notify fails
		}
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.s.track.done()
	})
	return nil
}
