package sfu

import (
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/sfu/internal/rtcpx"
	"github.com/pion/rtp"
)

// TestConcealFocusDemand: with conceal set, the layers a publisher is
// told to send are every layer, in one order, whatever its subscribers
// want: a subscriber switching to the high layer and back (a proctor's
// focus), another arriving at the grid's layer, a tap (a recording), and
// a layer's first packet change nothing, and none of them sends a PLI.
// Without conceal the same steps change the demand and send PLIs, so
// the test tells the two apart.
func TestConcealFocusDemand(t *testing.T) {
	for _, conceal := range []bool{true, false} {
		t.Run(map[bool]string{true: "concealed", false: "dynacast"}[conceal], func(t *testing.T) {
			tr, ls := testTrack(QualityLow, QualityHigh)
			ls[0].rid, ls[1].rid = "q", "f"
			tr.conceal = conceal
			tr.declared = []string{"f", "h", "q"} // in the offer's order, high first; h not seen yet
			var told []string
			tr.onDemand = func(_ *Track, active []string) { told = append(told, strings.Join(active, ",")) }
			plis := 0
			tr.sendPLI = func(uint32) bool { plis++; return true }
			tr.updateDemand()
			start := slices.Clone(told)

			downs, _ := subscribe(tr, 1, QualityLow)
			d := downs[0]
			tr.updateDemand()
			d.setTarget(QualityHigh) // focus
			d.setTarget(QualityLow)  // back to the grid
			subscribe(tr, 1, QualityLow)
			tr.updateDemand()
			stop := tr.Tap(&countingWriter{}, QualityHigh)
			stop()
			tr.addLayer("h", 101)

			if conceal {
				if len(start) != 1 || start[0] != "q,h,f" {
					t.Fatalf("first demand %v, want every layer, lowest first: [q,h,f]", start)
				}
				if !slices.Equal(told, start) {
					t.Errorf("demand told %v: it changed with who watches", told)
				}
				if plis != 0 {
					t.Errorf("%d PLIs on a subscriber's demand", plis)
				}
				if s := tr.stats.snapshot(); s.PLIsConcealed == 0 {
					t.Error("the concealed keyframe requests were not counted")
				}
				return
			}
			if len(told) < 3 || plis == 0 {
				t.Errorf("dynacast: demand %v, %d PLIs; want the demand to follow the subscribers and PLIs on demand", told, plis)
			}
		})
	}
}

// newConcealEngine is a path Engine with ConcealFocus and a keyframe
// cadence.
func newConcealEngine(tb testing.TB, cadence time.Duration) *Engine {
	tb.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(Config{UDP: udp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ConcealFocus: true, ConcealKeyframes: cadence})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// TestConcealFocusKeyframeCadence: over real sockets, a publisher on a
// ConcealFocus node gets one PLI per cadence on its layer and no more,
// while its subscriber switches between the high layer and the grid's
// and asks for keyframes each time; and a packet it loses is NACKed
// though nobody receives its video (the second publisher has no
// subscriber).
func TestConcealFocusKeyframeCadence(t *testing.T) {
	const cadence = 200 * time.Millisecond
	e := newConcealEngine(t, cadence)
	r := newPathRoom(t, e, 1)
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 100}
	r.warm(t, &hdr)

	// The subscriber's demand changes six times while PLIs are counted
	// over a window of ten cadences.
	const window = 10 * cadence
	before := e.Stats().PLIsConcealed
	start := time.Now()
	end := start.Add(window)
	plis, switches := 0, 0
	next := start.Add(cadence / 3)
	for now := time.Now(); now.Before(end); now = time.Now() {
		if now.After(next) && switches < 6 {
			q := QualityHigh
			if switches%2 == 1 {
				q = QualityLow
			}
			if err := r.subs[0].peer.SetQuality(r.track.ID(), q); err != nil {
				t.Fatal(err)
			}
			r.track.RequestKeyframe(q) // as a subscriber's PLI does
			switches++
			next = next.Add(window / 7)
		}
		deadline := end
		if switches < 6 && next.Before(end) {
			deadline = next
		}
		b, err := r.pub.recvRTCP(deadline)
		if err != nil {
			continue // the deadline
		}
		it := rtcpx.Packets(b)
		for it.Next() {
			if h := it.Header(); h.Type == rtcpx.TypePSFB && h.Count == rtcpx.FmtPLI {
				if pli, err := rtcpx.ParsePLI(it.Packet()); err == nil && pli.MediaSSRC == 0x1000 {
					plis++
				}
			}
		}
	}
	// 10 cadences: 10 PLIs, or one fewer or more by where the window
	// falls and the clock's 20 ms tick; passing on the 6 requests (or
	// the subscriber's bind) would add them.
	if plis < 9 || plis > 11 {
		t.Errorf("%d PLIs over %v at a %v cadence, want 10±1", plis, window, cadence)
	}
	if n := e.Stats().PLIsConcealed - before; n < uint64(switches) {
		t.Errorf("%d keyframe requests concealed, want at least the %d made", n, switches)
	}

	// Unwatched loss is NACKed: a publisher nobody subscribes to.
	lone := newPathRoom(t, e, 0)
	h := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 700}
	lost := h.SequenceNumber + 2
	for i := range 5 {
		x := h
		x.SequenceNumber += uint16(i)
		x.Timestamp += uint32(i) * 3000
		if x.SequenceNumber != lost {
			lone.pub.sendRTP(&x, vp8Payload(i == 0))
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for found := false; !found; {
		b, err := lone.pub.recvRTCP(deadline)
		if err != nil {
			t.Fatalf("no NACK for seq %d of an unwatched layer: %v", lost, err)
		}
		it := rtcpx.Packets(b)
		for it.Next() {
			if h := it.Header(); h.Type == rtcpx.TypeRTPFB && h.Count == rtcpx.FmtNACK {
				if n, err := rtcpx.ParseNACK(it.Packet()); err == nil && n.MediaSSRC == 0x1000 {
					n.VisitLost(func(seq uint16) { found = found || seq == lost })
				}
			}
		}
	}
}
