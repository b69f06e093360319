package sfu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// countingWriter stands in for a subscriber's session (a sink) or a
// recorder's writer and records what it would be sent. It copies nothing,
// so a benchmark measures only the forwarding step.
type countingWriter struct {
	packets int
	last    rtp.Header
	payload []byte
	sent    []rtp.Header
	keep    bool // record every header and payload
}

func (w *countingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.packets++
	w.last = *h
	if w.keep {
		w.sent = append(w.sent, *h)
		w.payload = append(w.payload[:0], payload...)
	}
	return h.MarshalSize() + len(payload), nil
}

func (w *countingWriter) writeRTP(_ *sender, h *rtp.Header, payload []byte, _ sendClass) bool {
	_, err := w.WriteRTP(h, payload)
	return err == nil
}

func (w *countingWriter) writeRTPFrame(s *sender, h *rtp.Header, raw []byte, off int, c sendClass) bool {
	return w.writeRTP(s, h, raw[off:], c)
}

// testTrack builds a VP8 video Track with the given layer qualities.
func testTrack(layers ...int) (*Track, []*layer) {
	t := &Track{id: "TR_test", streamID: "PA_test", kind: KindVideo, mime: "video/vp8",
		codec: Codec{MimeType: "video/VP8", ClockRate: 90000}, stats: &counters{}, done: make(chan struct{})}
	t.subs.Store(&[]*DownTrack{})
	var ls []*layer
	for _, q := range layers {
		l := &layer{index: q, rid: fmt.Sprint(q), ssrc: uint32(100 + q), cache: newPacketCache(cacheBytesHigh)}
		t.layers[q].Store(l)
		ls = append(ls, l)
	}
	return t, ls
}

// trackStats is what the Engine would report of tr alone: the shared
// counters and the track's own forwarding counters.
func trackStats(tr *Track) Stats {
	s := tr.stats.snapshot()
	tr.count(&s)
	return s
}

// subscribe adds n bound down-tracks wanting quality q.
func subscribe(t *Track, n, q int) ([]*DownTrack, []*countingWriter) {
	var downs []*DownTrack
	var writers []*countingWriter
	for i := range n {
		d := newDownTrack(t, nil, q)
		w := &countingWriter{}
		d.out = w
		d.binding.Store(&binding{ssrc: uint32(1000 + i), pt: uint8(96 + i%2)})
		t.addSubscriber(d)
		downs, writers = append(downs, d), append(writers, w)
	}
	return downs, writers
}

// feed hands the track one packet of layer l as the receive path would:
// parsed into pkt, with its bytes.
func feed(tb testing.TB, tr *Track, l *layer, pkt *rtp.Packet, raw []byte) {
	if err := pkt.Unmarshal(raw); err != nil {
		tb.Fatal(err)
	}
	tr.forward(nil, l, pkt, raw, time.Now().UnixNano())
}

// vp8 marshals a 1,100-byte VP8 packet with a 15-bit picture ID and
// TL0PICIDX, as Chrome sends them, and one header extension.
func vp8(tb testing.TB, seq uint16, ts uint32, pic uint16, tl0 byte, key bool) []byte {
	tb.Helper()
	payload := make([]byte, 1100)
	payload[0] = 0x90 // X, S, partition 0
	payload[1] = 0xC0 // I, L
	payload[2] = 0x80 | byte(pic>>8)
	payload[3] = byte(pic)
	payload[4] = tl0
	payload[5] = 0x01 // P=1: interframe
	if key {
		payload[5] = 0x00
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 0xCAFE, Marker: true}, Payload: payload}
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
	tr, ls := testTrack(QualityLow)
	_, writers := subscribe(tr, 3, QualityLow)
	var pkt rtp.Packet
	feed(t, tr, ls[0], &pkt, vp8(t, 7, 90000, 5, 1, false))
	if writers[0].packets != 0 {
		t.Fatal("video forwarded before a keyframe")
	}
	feed(t, tr, ls[0], &pkt, vp8(t, 8, 93000, 6, 1, true))
	for i, w := range writers {
		if w.packets != 1 {
			t.Fatalf("subscriber %d got %d packets", i, w.packets)
		}
		if w.last.SSRC != uint32(1000+i) || w.last.PayloadType != uint8(96+i%2) {
			t.Errorf("subscriber %d got SSRC %d PT %d", i, w.last.SSRC, w.last.PayloadType)
		}
		if w.last.SequenceNumber != 8 || w.last.Timestamp != 93000 || !w.last.Marker {
			t.Errorf("subscriber %d: seq/ts/marker not passed through: %+v", i, w.last)
		}
		if w.last.Extension || len(w.last.Extensions) != 0 {
			t.Errorf("subscriber %d got the publisher's header extensions", i)
		}
	}
	if s := trackStats(tr); s.PacketsIn != 2 || s.PacketsOut != 3 {
		t.Errorf("stats %+v", s)
	}
}

// TestLayerSwitchIsSeamless: a subscriber moving from the low to the high
// layer and back sees one stream: sequence numbers without a gap or a
// repeat, timestamps that only advance, picture IDs and TL0PICIDX that
// continue, and the switch lands on a keyframe.
func TestLayerSwitchIsSeamless(t *testing.T) {
	tr, ls := testTrack(QualityLow, QualityHigh)
	low, high := ls[0], ls[1]
	downs, writers := subscribe(tr, 1, QualityLow)
	d, w := downs[0], writers[0]
	w.keep = true
	var pkt rtp.Packet
	// The layers have unrelated sequence numbers, timestamps and picture IDs.
	lowSeq, lowTS, lowPic := uint16(65530), uint32(4_000_000_000), uint16(32760)
	highSeq, highTS, highPic := uint16(1000), uint32(123), uint16(77)
	step := func(n int, keyLow, keyHigh bool) {
		for i := range n {
			feed(t, tr, low, &pkt, vp8(t, lowSeq, lowTS, lowPic, byte(lowPic), keyLow && i == 0))
			feed(t, tr, high, &pkt, vp8(t, highSeq, highTS, highPic, byte(highPic), keyHigh && i == 0))
			lowSeq, lowTS, lowPic = lowSeq+1, lowTS+3000, (lowPic+1)&0x7FFF
			highSeq, highTS, highPic = highSeq+1, highTS+3000, (highPic+1)&0x7FFF
		}
	}
	step(10, true, false) // starts on the low layer's keyframe
	if d.Layer() != QualityLow {
		t.Fatalf("on layer %d, want low", d.Layer())
	}
	d.setTarget(QualityHigh)
	step(5, false, false) // no keyframe on high yet: stay on low
	if d.Layer() != QualityLow {
		t.Fatal("switched without a keyframe")
	}
	step(10, false, true) // high keyframe: switch
	if d.Layer() != QualityHigh {
		t.Fatalf("on layer %d after a high keyframe, want high", d.Layer())
	}
	d.setTarget(QualityLow)
	step(10, true, false)
	if d.Layer() != QualityLow {
		t.Fatal("did not switch back to low")
	}
	if got := w.packets; got != 36 {
		t.Errorf("sent %d packets, want 36 (one layer at a time)", got)
	}
	for i := 1; i < len(w.sent); i++ {
		prev, cur := w.sent[i-1], w.sent[i]
		if cur.SequenceNumber != prev.SequenceNumber+1 {
			t.Errorf("packet %d: seq %d after %d", i, cur.SequenceNumber, prev.SequenceNumber)
		}
		if int32(cur.Timestamp-prev.Timestamp) <= 0 {
			t.Errorf("packet %d: timestamp %d after %d", i, cur.Timestamp, prev.Timestamp)
		}
	}
	// The last payload's picture ID continues the first run's: 36 frames
	// after the first keyframe's picture ID 32760, modulo 2^15.
	last := parseVP8(w.payload)
	if got, want := last.pictureID(w.payload), uint16((32760+35)&0x7FFF); got != want {
		t.Errorf("last picture ID %d, want %d", got, want)
	}
	if got, want := w.payload[last.tl0At], byte((32760+35)%256); got != want {
		t.Errorf("last TL0PICIDX %d, want %d", got, want)
	}
}

// TestForwardAllocatesNothing is the hot path's allocation budget: zero
// per packet, at 1 and 25 subscribers, including a subscriber whose
// payload must be rewritten after a switch.
func TestForwardAllocatesNothing(t *testing.T) {
	for _, n := range []int{1, 25} {
		tr, ls := testTrack(QualityLow)
		subscribe(tr, n, QualityLow)
		var pkt rtp.Packet
		feed(t, tr, ls[0], &pkt, vp8(t, 1, 0, 1, 1, true)) // keyframe starts them
		b := vp8(t, 2, 3000, 2, 1, false)
		if err := pkt.Unmarshal(b); err != nil {
			t.Fatal(err)
		}
		if allocs := testing.AllocsPerRun(1000, func() { tr.forward(nil, ls[0], &pkt, b, 1) }); allocs != 0 {
			t.Errorf("%d subscribers: %.1f allocations per packet, want 0", n, allocs)
		}
	}
}

// BenchmarkForward measures the SFU's own work per packet in (parse,
// cache, fan-out, per-subscriber translation and header rewrite), without
// pion's SRTP and socket write, which docs/benchmarks.md accounts for.
func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 25} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			tr, ls := testTrack(QualityLow)
			subscribe(tr, n, QualityLow)
			var p rtp.Packet
			feed(b, tr, ls[0], &p, vp8(b, 1, 0, 1, 1, true))
			pkt := vp8(b, 2, 3000, 2, 1, false)
			if err := p.Unmarshal(pkt); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				tr.forward(nil, ls[0], &p, pkt, 1)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/packet-out")
		})
	}
}

// TestResendFromCache: a NACK for a forwarded packet is answered from the
// layer's cache with the subscriber's sequence number, on RTX when
// negotiated; an unknown one is not.
func TestResendFromCache(t *testing.T) {
	for _, withRTX := range []bool{false, true} {
		t.Run(fmt.Sprintf("rtx=%v", withRTX), func(t *testing.T) {
			tr, ls := testTrack(QualityLow)
			downs, writers := subscribe(tr, 1, QualityLow)
			d, w := downs[0], writers[0]
			if withRTX {
				b := *d.binding.Load()
				b.rtxSSRC, b.rtxPT = 5555, 97
				d.binding.Store(&b)
			}
			var pkt rtp.Packet
			for i := range 10 {
				feed(t, tr, ls[0], &pkt, vp8(t, uint16(100+i), uint32(i*3000), uint16(i), 0, i == 0))
			}
			w.keep = true
			if !d.resend(nil, 105, time.Now().UnixNano()) {
				t.Fatal("NACK for a cached packet not answered")
			}
			got := w.sent[len(w.sent)-1]
			if withRTX {
				if got.SSRC != 5555 || got.PayloadType != 97 || w.payload[0] != 0 || w.payload[1] != 105 {
					t.Errorf("RTX packet %+v, OSN %x", got, w.payload[:2])
				}
			} else if got.SSRC != 1000 || got.SequenceNumber != 105 {
				t.Errorf("retransmission %+v", got)
			}
			if d.resend(nil, 105, time.Now().UnixNano()) {
				t.Error("a repeated NACK was answered again at once")
			}
			if d.resend(nil, 20, time.Now().UnixNano()) {
				t.Error("NACK for a packet never sent was answered")
			}
			if n := tr.stats.snapshot().Retransmits; n != 1 {
				t.Errorf("retransmits counted %d", n)
			}
		})
	}
}

// TestSendCodecs: a subscriber gets the publisher's codec alone, with the
// subscriber's payload type when its description named one (an H.264 of
// the same profile and packetization mode counts), the node's own
// otherwise.
func TestSendCodecs(t *testing.T) {
	h264 := func(plid string, pt uint8, mode string) sdpCodec {
		return sdpCodec{pt: pt, name: "H264", clockRate: 90000, fmtp: "level-asymmetry-allowed=1;packetization-mode=" + mode + ";profile-level-id=" + plid}
	}
	vp8src := Codec{MimeType: "video/VP8", ClockRate: 90000}
	h264src := Codec{MimeType: "video/H264", ClockRate: 90000, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}
	rtx := func(pt, apt uint8) sdpCodec {
		return sdpCodec{pt: pt, name: "rtx", clockRate: 90000, fmtp: fmt.Sprintf("apt=%d", apt)}
	}
	cases := []struct {
		name    string
		src     Codec
		client  []sdpCodec
		pt, rtx uint8 // rtx 0: none
	}{
		{"vp8, the client's type", vp8src, []sdpCodec{h264("42e01f", 102, "1"), {pt: 120, name: "vp8", clockRate: 90000}, rtx(121, 120)}, 120, 121},
		{"h264 same profile other level", h264src, []sdpCodec{{pt: 96, name: "VP8", clockRate: 90000}, h264("42001f", 108, "1")}, 108, 0},
		{"h264 high profile: the node's own", h264src, []sdpCodec{h264("640c1f", 112, "1")}, ptH264CB, ptH264CBRTX},
		{"h264 packetization mode must match", h264src, []sdpCodec{h264("42e01f", 106, "0")}, ptH264CB, ptH264CBRTX},
		{"nothing named", vp8src, nil, ptVP8, ptVP8RTX},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			main, r := sendCodecs(tc.src, tc.client)
			if main.pt != tc.pt {
				t.Errorf("payload type %d, want %d", main.pt, tc.pt)
			}
			if got := uint8(0); r != nil {
				got = r.pt
				if got != tc.rtx {
					t.Errorf("RTX payload type %d, want %d", got, tc.rtx)
				}
			} else if tc.rtx != 0 {
				t.Errorf("no RTX, want %d", tc.rtx)
			}
		})
	}
}

// TestTapTakesTheHighLayer: a tap (the recorder's) starts on the first
// keyframe of any layer, moves to the high layer on its keyframe as one
// continuous stream with the publisher's payload type, counts in no
// forwarding figure, and gets nothing once stopped.
func TestTapTakesTheHighLayer(t *testing.T) {
	tr, ls := testTrack(QualityLow, QualityHigh)
	tr.codec.PayloadType = 96
	w := &countingWriter{}
	stop := tr.Tap(w, QualityHigh)
	var pkt rtp.Packet
	feed(t, tr, ls[1], &pkt, vp8(t, 500, 5000, 9, 3, false))
	feed(t, tr, ls[0], &pkt, vp8(t, 1, 1000, 1, 1, true))
	if w.packets != 1 || w.last.SequenceNumber != 1 {
		t.Fatalf("tap did not start on the low keyframe: %d packets, last %+v", w.packets, w.last)
	}
	feed(t, tr, ls[1], &pkt, vp8(t, 501, 8000, 10, 3, true))
	feed(t, tr, ls[0], &pkt, vp8(t, 2, 4000, 2, 1, false))
	if w.packets != 2 || w.last.SequenceNumber != 2 || w.last.PayloadType != 96 {
		t.Fatalf("tap got %d packets, last %+v; want the high keyframe as seq 2", w.packets, w.last)
	}
	if s := trackStats(tr); s.PacketsOut != 0 {
		t.Errorf("a tap counted as %d forwarded packets", s.PacketsOut)
	}
	stop()
	feed(t, tr, ls[1], &pkt, vp8(t, 502, 11000, 11, 3, false))
	if w.packets != 2 {
		t.Errorf("tap got packets after stop")
	}
}

// BenchmarkForwardMetrics measures what the metrics cost the hot path, in
// CPU time, with every core forwarding (b.RunParallel: one publisher
// track per goroutine, 25 subscribers each). With metrics=on the tracks
// are registered with an Engine as in the server, and a goroutine takes
// the Engine's Stats every millisecond (15,000 times Prometheus's usual
// rate); with metrics=off nobody reads the counters. cpu-ns/op is the
// process's user+system time per packet forwarded to 25, scraper
// included.
func BenchmarkForwardMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			e := &Engine{tracks: map[*Track]struct{}{}}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			if on {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							_ = e.Stats()
						}
					}
				}()
			}
			before := cpuTime(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				tr, ls := testTrack(QualityLow)
				if on {
					tr.stats = &e.counter
					e.addTrack(tr)
					defer e.retireTrack(tr)
				}
				subscribe(tr, 25, QualityLow)
				var p rtp.Packet
				feed(b, tr, ls[0], &p, vp8(b, 1, 0, 1, 1, true))
				pkt := vp8(b, 2, 3000, 2, 1, false)
				_ = p.Unmarshal(pkt)
				for pb.Next() {
					tr.forward(nil, ls[0], &p, pkt, 1)
				}
			})
			cpu := cpuTime(b) - before
			close(stop)
			wg.Wait()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			if on && e.Stats().PacketsOut == 0 {
				b.Fatal("nothing counted")
			}
		})
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// failingWriter refuses packets while full is set, as a recorder's
// queue does when its writer falls behind.
type failingWriter struct {
	countingWriter
	full bool
}

func (w *failingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.full {
		return 0, errors.New("queue full")
	}
	return w.countingWriter.WriteRTP(h, payload)
}

// TestTapWaitsForKeyframeWhenRefused: a tap whose writer refuses a packet
// gets nothing more of that picture: the rest of the frame and the delta
// frames after it are held back until the next keyframe, which goes on
// with the next sequence number (the recorder sees one gap, then a clean
// picture), and a keyframe is asked for at once.
func TestTapWaitsForKeyframeWhenRefused(t *testing.T) {
	tr, ls := testTrack(QualityLow)
	var plis int
	tr.sendPLI = func(uint32) bool { plis++; return true }
	w := &failingWriter{}
	w.keep = true
	stop := tr.Tap(w, QualityLow)
	defer stop()
	var pkt rtp.Packet
	feed(t, tr, ls[0], &pkt, vp8(t, 1, 0, 1, 1, true))
	feed(t, tr, ls[0], &pkt, vp8(t, 2, 3000, 2, 1, false))
	before := plis
	w.full = true
	feed(t, tr, ls[0], &pkt, vp8(t, 3, 6000, 3, 1, false)) // refused
	w.full = false
	feed(t, tr, ls[0], &pkt, vp8(t, 4, 9000, 4, 1, false))
	feed(t, tr, ls[0], &pkt, vp8(t, 5, 12000, 5, 1, false))
	if w.packets != 2 {
		t.Fatalf("%d packets reached the tap after a refusal, want none until a keyframe", w.packets-2)
	}
	if plis != before+1 {
		t.Errorf("%d keyframe requests after the refusal, want 1", plis-before)
	}
	feed(t, tr, ls[0], &pkt, vp8(t, 6, 15000, 6, 1, true))
	if w.packets != 3 || w.last.SequenceNumber != 3 {
		t.Fatalf("after the keyframe: %d packets, last seq %d; want the keyframe as seq 3", w.packets, w.last.SequenceNumber)
	}
}

// TestForwardLongRun: a layer forwarded for longer than 2^15 packets
// (four minutes of a 1 Mb/s camera) and across the sequence number's wrap
// keeps going, and a packet reordered within the run still passes.
func TestForwardLongRun(t *testing.T) {
	tr, ls := testTrack(QualityLow)
	_, writers := subscribe(tr, 1, QualityLow)
	var pkt rtp.Packet
	raw := vp8(t, 100, 0, 0, 0, true)
	feed(t, tr, ls[0], &pkt, raw)
	inter := vp8(t, 0, 0, 0, 0, false)
	const n = 3 << 15
	for i := 1; i <= n; i++ {
		binary.BigEndian.PutUint16(inter[2:], uint16(100+i))
		binary.BigEndian.PutUint32(inter[4:], uint32(i*3000))
		feed(t, tr, ls[0], &pkt, inter)
	}
	if got := writers[0].packets; got != n+1 {
		t.Fatalf("%d packets forwarded of %d", got, n+1)
	}
	late := 100 + n - 50 // within reach
	binary.BigEndian.PutUint16(inter[2:], uint16(late))
	feed(t, tr, ls[0], &pkt, inter)
	if got := writers[0].packets; got != n+2 {
		t.Fatalf("a reordered packet was dropped (%d forwarded)", got)
	}
}
