package sfu

import (
	"slices"
	"testing"
	"time"
)

// TestReceptionReport: the report block a publisher gets says what it
// lost, across a sequence number wrap (RFC 3550 A.1, A.3), and a steady
// stream has no jitter (A.8).
func TestReceptionReport(t *testing.T) {
	var s rxStats
	at := time.Now().UnixNano()
	seq, ts := uint16(65530), uint32(1000)
	for i := range 20 {
		if i != 3 && i != 7 { // two lost, one of them after the wrap
			s.received(seq, ts, at, 90000)
		}
		seq++
		ts += 3000
		at += int64(time.Second / 30)
	}
	b := s.report(42, at)
	if b.SSRC != 42 || b.TotalLost != 2 {
		t.Errorf("lost %d, want 2 (%+v)", b.TotalLost, b)
	}
	if want := uint32(1<<16 + 65530 + 19 - 65536); b.ExtHighestSeq != want {
		t.Errorf("extended highest %d, want %d", b.ExtHighestSeq, want)
	}
	if want := uint8(2 * 256 / 20); b.FractionLost != want {
		t.Errorf("fraction %d, want %d", b.FractionLost, want)
	}
	if b.Jitter > 1 {
		t.Errorf("jitter %d for a steady stream", b.Jitter)
	}
	// The next interval lost nothing.
	for range 10 {
		s.received(seq, ts, at, 90000)
		seq++
		ts += 3000
		at += int64(time.Second / 30)
	}
	if b := s.report(42, at); b.FractionLost != 0 || b.TotalLost != 2 {
		t.Errorf("second interval %+v", b)
	}
}

// TestNACKList: a gap is asked for once it is past the reordering
// allowance, again each round trip, no more once it arrives, and never
// past a second or ten tries; a jump beyond the window starts afresh.
func TestNACKList(t *testing.T) {
	l := newNACKList()
	at := int64(1e12)
	ms := int64(time.Millisecond)
	l.arrived(100, at)
	if !l.arrived(104, at) {
		t.Fatal("a gap of three was not noticed")
	}
	if got := l.due(nil, at+ms, 0); len(got) != 0 {
		t.Fatalf("NACKed %v inside the reordering allowance", got)
	}
	if got := l.due(nil, at+20*ms, 0); !slices.Equal(got, []uint16{101, 102, 103}) {
		t.Fatalf("due %v, want 101-103", got)
	}
	l.received(102) // a retransmission
	if got := l.due(nil, at+30*ms, 0); len(got) != 0 {
		t.Fatalf("NACKed again before the interval: %v", got)
	}
	if got := l.due(nil, at+70*ms, 0); !slices.Equal(got, []uint16{101, 103}) {
		t.Fatalf("second round %v, want 101 and 103", got)
	}
	if got := l.due(nil, at+2000*ms, 0); len(got) != 0 || l.n != 0 {
		t.Fatalf("still asking after a second: %v (%d left)", got, l.n)
	}
	l.arrived(105, at)
	l.arrived(105+nackWindow+10, at) // the publisher jumped
	if l.n != 0 {
		t.Fatalf("%d missing after a jump", l.n)
	}
	l.arrived(1000, at)
	l.arrived(1002, at)
	for i := range 60 { // 600 ms: room for 15 tries at 40 ms
		l.due(nil, at+int64(i+1)*10*ms, 0)
	}
	if l.n != 0 {
		t.Fatalf("asked for more than %d tries", nackTries)
	}
}
