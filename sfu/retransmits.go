package sfu

import (
	"sync/atomic"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// retransmitCounter is an interceptor placed next to the transport, below
// pion's NACK responder, that counts the packets the responder resends:
// a packet on another SSRC than the stream's (RTX, RFC 4588) or one whose
// sequence number is not newer than the highest already sent.
type retransmitCounter struct {
	interceptor.NoOp
	count *atomic.Uint64
}

type retransmitCounterFactory struct{ count *atomic.Uint64 }

func (f retransmitCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &retransmitCounter{count: f.count}, nil
}

// BindLocalStream wraps one outgoing stream's writer.
func (r *retransmitCounter) BindLocalStream(info *interceptor.StreamInfo, next interceptor.RTPWriter) interceptor.RTPWriter {
	s := &sentSeq{ssrc: info.SSRC, count: r.count}
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		s.note(h)
		return next.Write(h, payload, a)
	})
}

// sentSeq tracks the highest sequence number sent on one stream. The
// down-track's reader writes new packets and the NACK responder old ones,
// concurrently, so the state is one atomic word: bit 16 says a packet was
// seen, the low 16 bits hold the highest sequence number.
type sentSeq struct {
	ssrc  uint32
	count *atomic.Uint64
	high  atomic.Uint32
}

const seqSeen = 1 << 16

func (s *sentSeq) note(h *rtp.Header) {
	if h.SSRC != s.ssrc {
		s.count.Add(1) // RTX stream
		return
	}
	for {
		cur := s.high.Load()
		if cur&seqSeen != 0 && int16(h.SequenceNumber-uint16(cur)) <= 0 {
			s.count.Add(1)
			return
		}
		if s.high.CompareAndSwap(cur, seqSeen|uint32(h.SequenceNumber)) {
			return
		}
	}
}
