package sfu

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// headerOnce is the innermost interceptor of a publisher's streams. pion
// passes each incoming packet up the interceptor chain with no
// attributes, so the first interceptor that needs the RTP header (the
// NACK generator, receiver reports and TWCC feedback all do) allocates an
// attributes map and a header for every packet, ~320 bytes: nearly all
// of a node's garbage. headerOnce parses the header into one the stream
// reuses and hands it on in one reused map, so the packet allocates
// nothing on its way to the track.
//
// The map's key for the header is pion's unexported one: it is learned
// from the first packet, which goes through Attributes.GetRTPHeader.
// Interceptors after this one only read the header during their Read (the
// TWCC interceptor queues a pointer to it but never reads it), and the
// attributes go no further than the track reader, which ignores them.
type headerOnce struct{ interceptor.NoOp }

var _ interceptor.Interceptor = (*headerOnce)(nil)

type headerOnceFactory struct{}

func (headerOnceFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerOnce{}, nil
}

// BindRemoteStream wraps one incoming stream; its reader runs on one
// goroutine, so the reused map and header need no lock.
func (*headerOnce) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	attrs := interceptor.Attributes{}
	var hdr rtp.Header
	var key any
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil || a != nil {
			return n, a, err
		}
		clear(attrs)
		if key == nil {
			if _, err := attrs.GetRTPHeader(b[:n]); err != nil {
				return n, nil, nil // the next interceptor reports it
			}
			for k, v := range attrs {
				if _, ok := v.(*rtp.Header); ok {
					key = k
				}
			}
			return n, attrs, nil
		}
		if _, err := hdr.Unmarshal(b[:n]); err != nil {
			return n, nil, nil
		}
		attrs[key] = &hdr
		return n, attrs, nil
	})
}
