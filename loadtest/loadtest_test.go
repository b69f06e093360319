package loadtest

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// The end-to-end test (a real node, real peers) is cmd/invigil's
// TestLoadSmall; these cover the parts that decide the figures.

func TestVP8PayloadIsValid(t *testing.T) {
	l := cameraLayers(false)[1]
	for _, tc := range []struct {
		name       string
		start, key bool
	}{
		{"keyframe start", true, true},
		{"delta start", true, false},
		{"continuation", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, 300)
			sent := time.Now().UnixNano()
			writeVP8(p, vp8Frame{pic: 0x1234, tl0: 7, tid: 2, sync: true, keyIdx: 3}, tc.start, tc.key, l, 2000, stamp{layer: 1, seq: 77, sent: sent})
			// pion's depacketizer is an independent reading of RFC 7741.
			var d codecs.VP8Packet
			body, err := d.Unmarshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if d.X != 1 || d.S != b(tc.start) || d.PID != 0 || d.I != 1 || d.PictureID != 0x1234 {
				t.Errorf("descriptor: X=%d S=%d PID=%d I=%d picture ID %#x", d.X, d.S, d.PID, d.I, d.PictureID)
			}
			if d.L != 1 || d.T != 1 || d.K != 1 || d.TL0PICIDX != 7 || d.TID != 2 || d.Y != 1 || d.KEYIDX != 3 {
				t.Errorf("temporal: L=%d T=%d K=%d TL0PICIDX %d TID %d Y %d KEYIDX %d", d.L, d.T, d.K, d.TL0PICIDX, d.TID, d.Y, d.KEYIDX)
			}
			if got := (&codecs.VP8Packet{}).IsPartitionHead(p); got != tc.start {
				t.Errorf("partition head %v, want %v", got, tc.start)
			}
			if tc.start {
				if isKey := body[0]&0x01 == 0; isKey != tc.key {
					t.Errorf("frame tag P bit says keyframe=%v", isKey)
				}
				if tc.key && (body[3] != 0x9d || body[4] != 0x01 || body[5] != 0x2a ||
					int(body[6])|int(body[7])<<8 != 640 || int(body[8])|int(body[9])<<8 != 360) {
					t.Errorf("keyframe header % x", body[:10])
				}
			}
			st, ok := stampOf(p, true)
			if !ok || st.layer != 1 || st.seq != 77 || st.sent != sent {
				t.Errorf("stamp %+v %v", st, ok)
			}
		})
	}
}

// TestL1T3 checks the low layer's temporal pattern (RFC 7741 §4.2):
// TIDs 0,2,1,2 restarting at a keyframe, TL0PICIDX one more per base
// frame, KEYIDX one more per keyframe, Y on all but the frame that refers
// to the TID-1 frame.
func TestL1T3(t *testing.T) {
	v := vp8Stream{pic: 0x7FFE, tl0: 254, temporal: true}
	want := []struct {
		key    bool
		tid    uint8
		tl0    uint8
		sync   bool
		keyIdx uint8
	}{
		{true, 0, 255, true, 1}, {false, 2, 255, true, 1}, {false, 1, 255, true, 1}, {false, 2, 255, false, 1},
		{false, 0, 0, true, 1}, {false, 2, 0, true, 1}, {true, 0, 1, true, 2}, {false, 2, 1, true, 2},
	}
	for i, w := range want {
		f := v.next(w.key)
		if f.tid != w.tid || f.tl0 != w.tl0 || f.sync != w.sync || f.keyIdx != w.keyIdx || f.pic != uint16((0x7FFE+i)&0x7FFF) {
			t.Errorf("frame %d: %+v, want tid %d tl0 %d sync %v keyidx %d", i, f, w.tid, w.tl0, w.sync, w.keyIdx)
		}
	}
	base := vp8Stream{}
	for range 5 {
		if f := base.next(false); f.tid != 0 {
			t.Errorf("a layer without temporal layers sent TID %d", f.tid)
		}
	}
}

func b(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

func TestOpusStamp(t *testing.T) {
	p := make([]byte, audioBytes)
	writeOpus(p, stamp{seq: 9, sent: 42})
	if p[0] != opusTOC {
		t.Errorf("TOC %#x", p[0])
	}
	if st, ok := stampOf(p, false); !ok || st.seq != 9 || st.sent != 42 {
		t.Errorf("stamp %+v %v", st, ok)
	}
	if _, ok := stampOf(p[:5], false); ok {
		t.Error("a truncated payload gave a stamp")
	}
}

// TestRTPSeqPayload parses what pion marshals, header extensions,
// CSRCs and padding included.
func TestRTPSeqPayload(t *testing.T) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 65535, CSRC: []uint32{1, 2}}, Payload: []byte("payload")}
	_ = pkt.Header.SetExtension(1, []byte("0"))
	_ = pkt.Header.SetExtension(2, []byte("h"))
	raw, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	seq, payload, ok := rtpSeqPayload(raw)
	if !ok || seq != 65535 || string(payload) != "payload" {
		t.Errorf("got %d %q %v", seq, payload, ok)
	}
	padded := append(append([]byte{}, raw...), 0, 0, 3)
	padded[0] |= 0x20
	if _, payload, ok := rtpSeqPayload(padded); !ok || string(payload) != "payload" {
		t.Errorf("padded: %q %v", payload, ok)
	}
	if _, _, ok := rtpSeqPayload(raw[:13]); ok {
		t.Error("a truncated header parsed")
	}
}

func TestSeqTracker(t *testing.T) {
	cases := []struct {
		name                       string
		seqs                       []uint16
		expected, lost, late, dups int64
	}{
		{"in order", []uint16{10, 11, 12, 13}, 4, 0, 0, 0},
		{"gap", []uint16{10, 11, 14}, 5, 2, 0, 0},
		{"gap filled by a retransmission", []uint16{10, 11, 14, 12, 13}, 5, 0, 2, 0},
		{"wrap-around", []uint16{65534, 65535, 0, 1}, 4, 0, 0, 0},
		{"gap across the wrap", []uint16{65534, 1}, 4, 2, 0, 0},
		{"duplicate", []uint16{5, 6, 6, 7}, 3, 0, 0, 1},
		{"too late to count", []uint16{0, 2000, 1}, 2001, 1999, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tr seqTracker
			for _, s := range tc.seqs {
				tr.add(s)
			}
			if tr.expected() != tc.expected || tr.lost() != tc.lost || tr.late != tc.late || tr.duplicate != tc.dups {
				t.Errorf("expected %d lost %d late %d dups %d; want %d %d %d %d",
					tr.expected(), tr.lost(), tr.late, tr.duplicate, tc.expected, tc.lost, tc.late, tc.dups)
			}
		})
	}
	// A long stream wraps many times without drifting.
	var tr seqTracker
	for i := range 200_000 {
		if i%1000 != 999 { // lose one in a thousand
			tr.add(uint16(i))
		}
	}
	if tr.expected() != 199_999 || tr.lost() != 199 {
		t.Errorf("long stream: expected %d lost %d", tr.expected(), tr.lost())
	}
}

func TestDelayQuantiles(t *testing.T) {
	var h delayHist
	for i := range 1000 {
		h.add(time.Duration(i) * 10 * time.Microsecond) // 0–9.99 ms
	}
	h.add(2 * time.Second) // overflow
	var o delayHist
	o.merge(&h)
	if p50 := o.quantile(0.5); p50 < 4900*time.Microsecond || p50 > 5050*time.Microsecond {
		t.Errorf("p50 %s", p50)
	}
	if p99 := o.quantile(0.99); p99 < 9850*time.Microsecond || p99 > 10*time.Millisecond {
		t.Errorf("p99 %s", p99)
	}
	if top := o.quantile(1); top < time.Second {
		t.Errorf("max %s: the overflow bucket was lost", top)
	}
	if got := percentile([]time.Duration{5, 1, 4, 2, 3}, 0.5); got != 3 {
		t.Errorf("median %d", got)
	}
}

// TestLayerBitrates: the frame sizes add up to each layer's bitrate, and
// no packet outgrows the MTU budget.
func TestLayerBitrates(t *testing.T) {
	for _, l := range cameraLayers(false) {
		perTwoSeconds := l.keyBytes() + (keyframeEvery-1)*l.deltaBytes()
		kbps := float64(perTwoSeconds) * 8 / 2 / 1000
		if want := float64(l.bitrate) / 1000; kbps < 0.97*want || kbps > want {
			t.Errorf("layer %s: %.0f kb/s, want ~%.0f", l.rid, kbps, want)
		}
	}
	if got := audioBytes * 8 * 50; got != 32_000 {
		t.Errorf("audio %d b/s", got)
	}
	if single := cameraLayers(true); len(single) != 1 || single[0].rid != "" || single[0].bitrate != 500_000 {
		t.Errorf("single layer %+v", single)
	}
}

func TestSignalURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:7880":         "ws://127.0.0.1:7880/v1/rtc",
		"https://localhost:8443/":       "wss://localhost:8443/v1/rtc",
		"http://[::1]:7880/invigil":     "ws://[::1]:7880/invigil/v1/rtc",
		"http://10.0.0.1:7880":          "",
		"http://exam.example.com":       "",
		"ftp://127.0.0.1":               "",
		"http://user@127.0.0.1:1":       "",
		"http://127.0.0.1:7880/?x=evil": "",
	} {
		got, err := signalURL(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("%s: got %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	s, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.rss < 1<<20 {
		t.Errorf("rss %d bytes", s.rss)
	}
	if _, err := readProc(1 << 30); err == nil || !strings.Contains(err.Error(), "server pid") {
		t.Errorf("a missing pid: %v", err)
	}
}

func TestLoopbackCandidate(t *testing.T) {
	for line, want := range map[string]bool{
		"candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host":       true,
		"candidate:1 1 udp 2130706431 ::1 7882 typ host":             true,
		"candidate:1 1 udp 2130706431 192.0.2.1 7882 typ host":       false,
		"candidate:1 1 udp 2130706431 host.local 7882 typ host":      false,
		"candidate:1 1 udp 1694498815 203.0.113.5 3478 typ srflx ra": false,
		"garbage": false,
	} {
		if got := loopbackCandidate(line); got != want {
			t.Errorf("%q: %v", line, got)
		}
	}
}
