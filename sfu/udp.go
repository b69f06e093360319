package sfu

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/invigil/invigil/sfu/internal/mmsg"
)

const (
	// readBatch is how many datagrams one recvmmsg takes: enough to
	// amortise the system call under load (32 packets of a 1,000-student
	// node arrive within ~0.2 ms), small enough that the first of them
	// waits little for the last.
	readBatch = 32
	// maxRoutes bounds the client addresses one reader knows: each needs
	// a session's valid check, so this only caps memory under abuse.
	maxRoutes = 1 << 16
	// sweepEvery is how often a reader forgets addresses of ended sessions.
	sweepEvery = 10 * time.Second
)

// udpLoop is one reader of a shared UDP socket: it reads batches, finds
// each datagram's session by its source address, and runs it to
// completion (decrypt, forward, encrypt), queueing what it sends on its
// own sender, flushed once per batch. No other goroutine touches routes.
type udpLoop struct {
	e      *Engine
	conn   *net.UDPConn
	r      *mmsg.Reader
	s      *sender
	msgs   []mmsg.Message
	routes map[netip.AddrPort]*Peer // addresses that passed a check
	swept  int64
}

func newUDPLoop(e *Engine, conn *net.UDPConn) (*udpLoop, error) {
	r, err := mmsg.NewReader(conn, readBatch)
	if err != nil {
		return nil, err
	}
	w, err := mmsg.NewWriter(conn, senderSlots)
	if err != nil {
		return nil, err
	}
	l := &udpLoop{e: e, conn: conn, r: r, s: newSender(e, conn, w, senderSlots),
		msgs: make([]mmsg.Message, readBatch), routes: map[netip.AddrPort]*Peer{}}
	backing := make([]byte, readBatch*maxPacket)
	for i := range l.msgs {
		l.msgs[i].Buf = backing[i*maxPacket : (i+1)*maxPacket : (i+1)*maxPacket]
	}
	return l, nil
}

// run reads until the socket closes.
func (l *udpLoop) run() {
	for {
		n, err := l.r.Read(l.msgs)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.e.counter.readErrors.Add(1)
			continue
		}
		at := time.Now().UnixNano()
		for i := range n {
			m := &l.msgs[i]
			l.handle(m.Buf[:m.N], m.Addr, at)
		}
		l.s.flush()
		if at-l.swept > int64(sweepEvery) {
			l.sweep(at)
		}
	}
}

// handle dispatches one datagram. Only a STUN check with a session's
// credentials admits a new address; anything else from an unknown address
// is dropped unread (RFC 8445 §7.3: media only on validated pairs).
func (l *udpLoop) handle(b []byte, from netip.AddrPort, at int64) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if p, ok := l.routes[from]; ok {
		if !p.gone.Load() {
			p.receive(l.s, b, from, nil, at)
			return
		}
		delete(l.routes, from)
	}
	if classify(b) != kindSTUN {
		l.e.counter.unknownSource.Add(1)
		return
	}
	p := l.e.peerForCheck(b)
	if p == nil {
		l.e.counter.stunRefused.Add(1)
		return
	}
	if p.stunIn(l.s, b, from, nil, at) && len(l.routes) < maxRoutes {
		l.routes[from] = p
	}
}

// sweep forgets the addresses of sessions that have ended.
func (l *udpLoop) sweep(at int64) {
	l.swept = at
	for a, p := range l.routes {
		if p.gone.Load() {
			delete(l.routes, a)
		}
	}
}
