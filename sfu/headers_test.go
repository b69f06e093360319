package sfu

import (
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// TestHeaderOnce: behind headerOnce, pion's NACK generator and receiver
// reports see every packet's own header (a gap is NACKed, so they read
// the right sequence numbers), and reading a packet allocates nothing;
// without it the same chain allocates a map and a header per packet.
func TestHeaderOnce(t *testing.T) {
	nacked := make(chan uint16, 16)
	chain := func(first bool) (interceptor.RTPReader, *uint16, func()) {
		var fs []interceptor.Interceptor
		if first {
			fs = append(fs, &headerOnce{})
		}
		recv, _ := report.NewReceiverInterceptor()
		gen, _ := nack.NewGeneratorInterceptor(nack.GeneratorInterval(5 * time.Millisecond))
		r, _ := recv.NewInterceptor("")
		g, _ := gen.NewInterceptor("")
		fs = append(fs, r, g)
		c := interceptor.NewChain(fs)
		c.BindRTCPWriter(interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, _ interceptor.Attributes) (int, error) {
			for _, p := range pkts {
				if n, ok := p.(*rtcp.TransportLayerNack); ok {
					for _, pair := range n.Nacks {
						for _, s := range pair.PacketList() {
							select {
							case nacked <- s:
							default:
							}
						}
					}
				}
			}
			return 0, nil
		}))
		info := &interceptor.StreamInfo{SSRC: 5, ClockRate: 90000, MimeType: "video/VP8",
			RTCPFeedback: []interceptor.RTCPFeedback{{Type: "nack"}}}
		seq := new(uint16)
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: 5}, Payload: make([]byte, 1000)}
		raw := func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
			pkt.SequenceNumber, pkt.Timestamp = *seq, uint32(*seq)*3000
			n, err := pkt.MarshalTo(b)
			*seq++
			return n, a, err
		}
		return c.BindRemoteStream(info, interceptor.RTPReaderFunc(raw)), seq, func() { c.Close() }
	}

	reader, seq, closeChain := chain(true)
	defer closeChain()
	buf := make([]byte, 1500)
	read := func() {
		if _, _, err := reader.Read(buf, nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		read()
	}
	if allocs := testing.AllocsPerRun(1000, read); allocs != 0 {
		t.Errorf("a packet read allocates %.1f times behind headerOnce", allocs)
	}
	// The header the others see is the packet's own: skip one sequence
	// number and the NACK generator asks for exactly that one.
	missing := *seq
	*seq++
	for range 5 {
		read()
	}
	select {
	case got := <-nacked:
		if got != missing {
			t.Errorf("NACKed %d, want %d", got, missing)
		}
	case <-time.After(2 * time.Second):
		t.Error("the gap was never NACKed")
	}
	bare, _, closeBare := chain(false)
	defer closeBare()
	if allocs := testing.AllocsPerRun(100, func() { bare.Read(buf, nil) }); allocs == 0 {
		t.Errorf("without headerOnce the chain allocates nothing: the test no longer measures what it should")
	}
}
