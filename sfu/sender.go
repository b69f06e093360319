package sfu

import (
	"errors"
	"net"
	"net/netip"

	"github.com/invigil/invigil/sfu/internal/mmsg"
)

// sendClass names what a datagram carries, for the drop policy of an
// ICE-TCP backlog (tcp.go): video goes first, audio last.
type sendClass uint8

const (
	classControl sendClass = iota // STUN, DTLS: never dropped for room
	classRTCP
	classAudio
	classVideo
)

// senderSlots is how many datagrams a batch holds before it is flushed:
// one inbound batch of 32 packets fanned out to a grid of 25 proctors is
// 800, so a reader flushes a few times per batch; each flush is one
// sendmmsg.
const senderSlots = 256

// sender batches the datagrams one goroutine sends while it works through
// what it read; flush sends them with one system call. It is owned by that
// goroutine: a UDP reader, an ICE-TCP reader, or (one slot, written at
// once) a control goroutine's direct write.
type sender struct {
	e    *Engine
	conn *net.UDPConn
	w    *mmsg.Writer // nil: each datagram is written as it is queued
	msgs []mmsg.Message
	bufs [][]byte
	n    int
}

func newSender(e *Engine, conn *net.UDPConn, w *mmsg.Writer, slots int) *sender {
	s := &sender{e: e, conn: conn, w: w, msgs: make([]mmsg.Message, slots), bufs: make([][]byte, slots)}
	backing := make([]byte, slots*maxPacket)
	for i := range s.bufs {
		s.bufs[i] = backing[i*maxPacket : i*maxPacket : (i+1)*maxPacket]
	}
	return s
}

// buffer returns the next free slot (empty, maxPacket of capacity),
// flushing the batch first when it is full. The slot is the caller's
// until it queues or discards it.
func (s *sender) buffer() []byte {
	if s.n == len(s.bufs) {
		s.flush()
	}
	return s.bufs[s.n][:0]
}

// queue adds b, which lies in the slot buffer returned, for to.
func (s *sender) queue(b []byte, to netip.AddrPort) {
	s.msgs[s.n] = mmsg.Message{Buf: b, Addr: to}
	s.n++
	if s.w == nil {
		s.flush()
	}
}

// discard gives the slot back unused (its bytes were copied elsewhere).
func (s *sender) discard() {}

// flush sends every queued datagram. A full socket buffer drops the rest
// of the batch (counted): the reader never waits for the kernel, so one
// burst cannot stall every room on the node.
func (s *sender) flush() {
	if s.n == 0 {
		return
	}
	if s.w == nil {
		for _, m := range s.msgs[:s.n] {
			if _, err := s.conn.WriteToUDPAddrPort(m.Buf, m.Addr); err != nil {
				s.e.counter.drops[dropSocket].Add(1)
			}
		}
		s.n = 0
		return
	}
	sent, err := s.w.Write(s.msgs[:s.n])
	if err != nil && errors.Is(err, mmsg.ErrWouldBlock) {
		s.e.counter.drops[dropSocket].Add(uint64(s.n - sent))
	}
	s.n = 0
}
