package sfu

import (
	"fmt"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// countingWriter stands in for pion's SRTP write stream and records what
// a subscriber would be sent. It copies nothing, so a benchmark measures
// only the SFU's own per-packet work.
type countingWriter struct {
	packets int
	last    rtp.Header
	payload int
}

func (w *countingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.packets++
	w.last = *h
	w.payload = len(payload)
	return h.MarshalSize() + len(payload), nil
}

func (w *countingWriter) Write(b []byte) (int, error) { return len(b), nil }

// fanout builds a video Track with n bound subscribers.
func fanout(n int) (*Track, []*countingWriter) {
	stats := &counters{}
	t := &Track{id: "TR_test", streamID: "PA_test", kind: webrtc.RTPCodecTypeVideo, stats: stats, done: make(chan struct{})}
	t.subs.Store(&[]*DownTrack{})
	writers := make([]*countingWriter, n)
	for i := range n {
		d := newDownTrack(t, stats)
		writers[i] = &countingWriter{}
		d.binding.Store(&binding{ssrc: uint32(1000 + i), pt: uint8(96 + i%2), writer: writers[i]})
		t.addSubscriber(d)
	}
	return t, writers
}

// vp8Packet is a marshalled 1,100-byte VP8 RTP packet with one header
// extension, as a browser sends it.
func vp8Packet(tb testing.TB) []byte {
	tb.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 90000, SSRC: 0xCAFE, Marker: true}, Payload: make([]byte, 1100)}
	if err := p.Header.SetExtension(3, []byte{1, 2, 3}); err != nil {
		tb.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestForwardRewritesPerSubscriber(t *testing.T) {
	tr, writers := fanout(3)
	var pkt rtp.Packet
	tr.forward(&pkt, vp8Packet(t))
	for i, w := range writers {
		if w.packets != 1 {
			t.Fatalf("subscriber %d got %d packets", i, w.packets)
		}
		if w.last.SSRC != uint32(1000+i) || w.last.PayloadType != uint8(96+i%2) {
			t.Errorf("subscriber %d got SSRC %d PT %d", i, w.last.SSRC, w.last.PayloadType)
		}
		if w.last.SequenceNumber != 7 || w.last.Timestamp != 90000 || !w.last.Marker {
			t.Errorf("subscriber %d: seq/ts/marker not passed through: %+v", i, w.last)
		}
		if w.last.Extension || len(w.last.Extensions) != 0 {
			t.Errorf("subscriber %d got the publisher's header extensions", i)
		}
		if w.payload != 1100 {
			t.Errorf("subscriber %d got %d payload bytes", i, w.payload)
		}
	}
	if s := tr.stats.snapshot(); s.PacketsIn != 1 || s.PacketsOut != 3 {
		t.Errorf("stats %+v", s)
	}
	// An unbound subscriber (before the answer) is skipped.
	d := (*tr.subs.Load())[0]
	d.binding.Store(nil)
	tr.forward(&pkt, vp8Packet(t))
	if writers[0].packets != 1 || writers[1].packets != 2 {
		t.Errorf("unbound subscriber was written to")
	}
	// Malformed input is counted and goes nowhere.
	tr.forward(&pkt, []byte{0x80, 0x60})
	if s := tr.stats.snapshot(); s.Malformed != 1 || writers[1].packets != 2 {
		t.Errorf("malformed packet forwarded; stats %+v", s)
	}
}

// TestForwardAllocatesNothing is the hot path's allocation budget: zero
// per packet, at 1 and 25 subscribers.
func TestForwardAllocatesNothing(t *testing.T) {
	for _, n := range []int{1, 25} {
		tr, _ := fanout(n)
		b := vp8Packet(t)
		var pkt rtp.Packet
		tr.forward(&pkt, b) // first packet sizes the reused slices
		if allocs := testing.AllocsPerRun(1000, func() { tr.forward(&pkt, b) }); allocs != 0 {
			t.Errorf("%d subscribers: %.1f allocations per packet, want 0", n, allocs)
		}
	}
}

// BenchmarkForward measures the SFU's own work per packet in (parse,
// fan-out, per-subscriber header rewrite), without pion's SRTP and socket
// write, which NOTES.md and docs/benchmarks.md account for separately.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 25} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			tr, _ := fanout(n)
			pkt := vp8Packet(b)
			var p rtp.Packet
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				tr.forward(&p, pkt)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/packet-out")
		})
	}
}

func TestMatchCodec(t *testing.T) {
	vp8 := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}
	h264 := func(plid string, pt webrtc.PayloadType, mode string) webrtc.RTPCodecParameters {
		return webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + plid}, PayloadType: pt}
	}
	cases := []struct {
		name    string
		want    webrtc.RTPCodecParameters
		offered []webrtc.RTPCodecParameters
		pt      webrtc.PayloadType // 0: no match
	}{
		{"vp8 by mime", vp8, []webrtc.RTPCodecParameters{h264("42e01f", 102, "1"), {RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "video/vp8", ClockRate: 90000}, PayloadType: 120}}, 120},
		{"h264 same profile other level", h264("42e01f", 102, "1"), []webrtc.RTPCodecParameters{vp8, h264("42001f", 108, "1")}, 108},
		{"h264 high profile refused", h264("42e01f", 102, "1"), []webrtc.RTPCodecParameters{h264("640c1f", 112, "1")}, 0},
		{"h264 packetization mode must match", h264("42e01f", 102, "1"), []webrtc.RTPCodecParameters{h264("42e01f", 106, "0")}, 0},
		{"absent", vp8, []webrtc.RTPCodecParameters{h264("42e01f", 102, "1")}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := matchCodec(tc.want, tc.offered)
			if ok != (tc.pt != 0) || (ok && got.PayloadType != tc.pt) {
				t.Fatalf("got %v %v, want PT %d", got.PayloadType, ok, tc.pt)
			}
		})
	}
}
