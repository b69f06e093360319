package rtcpx

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/rtcp"
)

const ms = 1000 // microseconds

// feedback runs AppendFeedback and returns the statuses of each packet as
// pion reads them, checking that ParseTWCC reads the same.
func feedback(t *testing.T, r *TWCCRecorder) ([]*rtcp.TransportLayerCC, [][]twccStatus) {
	t.Helper()
	b, ok := r.AppendFeedback(nil, 1, 2)
	if !ok {
		t.Fatal("AppendFeedback had nothing to report")
	}
	var fbs []*rtcp.TransportLayerCC
	var sts [][]twccStatus
	it := Packets(b)
	for _, p := range pionUnmarshal(t, b) {
		fb := p.(*rtcp.TransportLayerCC)
		st := pionStatuses(t, fb)
		if !it.Next() {
			t.Fatalf("Packets stopped early: %v", it.Err())
		}
		if _, ours := ourStatuses(t, it.Packet()); !slices.Equal(ours, st) {
			t.Fatalf("ParseTWCC read %v, pion %v", ours, st)
		}
		fbs, sts = append(fbs, fb), append(sts, st)
	}
	return fbs, sts
}

func TestTWCCRecorderScenarios(t *testing.T) {
	const t0 = 1_000_000 * ms                            // an arbitrary start, 1,000 s into the clock
	first := int(t0%TWCCRefTimeMicros) / TWCCDeltaMicros // first delta from the reference time
	type rec struct {
		seq uint16
		at  int64
	}
	for _, tc := range []struct {
		name  string
		recs  []rec
		want  [][]twccStatus
		bases []uint16
	}{
		{
			name: "in order across the wrap",
			recs: []rec{{65534, t0}, {65535, t0 + 1*ms}, {0, t0 + 2*ms}, {1, t0 + 3*ms}},
			want: [][]twccStatus{{{65534, true, first}, {65535, true, 4}, {0, true, 4}, {1, true, 4}}},
		},
		{
			name: "gap reported lost",
			recs: []rec{{10, t0}, {13, t0 + 1*ms}},
			want: [][]twccStatus{{{10, true, first}, {11, false, 0}, {12, false, 0}, {13, true, 4}}},
		},
		{
			name: "reordered: negative delta",
			recs: []rec{{10, t0}, {12, t0 + 1*ms}, {11, t0 + 2*ms}},
			want: [][]twccStatus{{{10, true, first}, {11, true, 8}, {12, true, -4}}},
		},
		{
			name: "duplicate keeps the first arrival",
			recs: []rec{{10, t0}, {11, t0 + 1*ms}, {11, t0 + 5*ms}},
			want: [][]twccStatus{{{10, true, first}, {11, true, 4}}},
		},
		{
			name: "delta over 8.19 s starts a packet",
			recs: []rec{{10, t0}, {11, t0 + 9000*ms}},
			want: [][]twccStatus{{{10, true, first}}, {{11, true, int((t0+9000*ms)%TWCCRefTimeMicros) / TWCCDeltaMicros}}},
		},
		{
			name: "reordered by over 8.19 s starts a packet",
			recs: []rec{{11, t0}, {10, t0 + 9000*ms}},
			want: [][]twccStatus{{{10, true, int((t0+9000*ms)%TWCCRefTimeMicros) / TWCCDeltaMicros}}, {{11, true, first}}},
		},
		{
			name: "too old to hold",
			recs: []rec{{10, t0}, {65536 + 10 - TWCCWindow, t0 + 1*ms}}, // TWCCWindow behind 10
			want: [][]twccStatus{{{10, true, first}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r TWCCRecorder
			for _, x := range tc.recs {
				r.Record(x.seq, x.at)
			}
			fbs, sts := feedback(t, &r)
			if len(sts) != len(tc.want) {
				t.Fatalf("%d packets %v, want %d %v", len(sts), sts, len(tc.want), tc.want)
			}
			for i := range sts {
				if !slices.Equal(sts[i], tc.want[i]) {
					t.Errorf("packet %d: %v, want %v", i, sts[i], tc.want[i])
				}
				if fbs[i].FbPktCount != uint8(i) || fbs[i].SenderSSRC != 1 || fbs[i].MediaSSRC != 2 {
					t.Errorf("packet %d: count %d, SSRCs %d %d", i, fbs[i].FbPktCount, fbs[i].SenderSSRC, fbs[i].MediaSSRC)
				}
			}
			// Each packet's reference time is its first arrival's 64 ms.
			firstAt := make(map[uint16]int64)
			for _, x := range slices.Backward(tc.recs) {
				firstAt[x.seq] = x.at
			}
			for i, fb := range fbs {
				if want := uint32(firstAt[sts[i][0].seq] / TWCCRefTimeMicros); fb.ReferenceTime != want {
					t.Errorf("packet %d: reference time %d, want %d", i, fb.ReferenceTime, want)
				}
			}
			if _, ok := r.AppendFeedback(nil, 1, 2); ok {
				t.Error("a second AppendFeedback with nothing new reported something")
			}
		})
	}
}

func TestTWCCRecorderLateArrivalReported(t *testing.T) {
	var r TWCCRecorder
	if _, ok := r.AppendFeedback(nil, 1, 2); ok {
		t.Fatal("feedback from an empty recorder")
	}
	r.Record(10, 0)
	r.Record(12, 2*ms)
	_, sts := feedback(t, &r)
	if want := []twccStatus{{10, true, 0}, {11, false, 0}, {12, true, 8}}; !slices.Equal(sts[0], want) {
		t.Fatalf("first feedback %v, want %v", sts[0], want)
	}
	r.Record(11, 3*ms) // arrives after feedback said it was lost
	r.Record(13, 4*ms)
	_, sts = feedback(t, &r)
	if want := []twccStatus{{11, true, 12}, {12, true, -4}, {13, true, 8}}; !slices.Equal(sts[0], want) {
		t.Fatalf("second feedback %v, want %v", sts[0], want)
	}
}

func TestTWCCRecorderFbCountWraps(t *testing.T) {
	var r TWCCRecorder
	for i := range 300 {
		r.Record(uint16(i), int64(i)*ms)
		fbs, _ := feedback(t, &r)
		if fbs[0].FbPktCount != uint8(i) {
			t.Fatalf("feedback %d has count %d", i, fbs[0].FbPktCount)
		}
	}
}

// twccModel is what a TWCCRecorder's documentation promises, kept the
// obvious way: every first arrival, forever.
type twccModel struct {
	started       bool
	highest, next int64
	arrival       map[int64]int64
	fbCount       uint8
}

func (m *twccModel) record(ext, at int64) {
	if !m.started {
		m.started, m.highest, m.next = true, ext, ext
	}
	if ext <= m.highest-TWCCWindow {
		return
	}
	if _, dup := m.arrival[ext]; dup {
		return
	}
	m.arrival[ext] = at
	m.highest, m.next = max(m.highest, ext), min(m.next, ext)
}

// twccCoverage counts what the random runs exercised, so the test can
// insist each case came up.
type twccCoverage struct {
	sizeSplits, deltaSplits, reordered, negative, large, runs, vec1, vec2, clamped int
}

// checkFeedback checks one AppendFeedback against the model: the packets
// cover exactly the sequence numbers the model says are due, in order;
// each status is received exactly when the model recorded it; each arrival
// reconstructed from reference time and deltas is the recorded one, to the
// 250 µs unit; the feedback counts follow on; a packet ends early only when
// it is full or the next delta does not fit.
func checkFeedback(t testing.TB, r *TWCCRecorder, m *twccModel, cov *twccCoverage) {
	t.Helper()
	prefix := []byte{0xee}
	b, ok := r.AppendFeedback(prefix, 0x11, 0x22)
	if want := m.started && m.next <= m.highest; ok != want || (!ok && len(b) != 1) {
		t.Fatalf("AppendFeedback reported %v (%d octets), want %v", ok, len(b)-1, want)
	}
	if !ok {
		return
	}
	const period = 1 << 24 * TWCCRefTimeMicros // the reference time wraps
	start := max(m.next, m.highest-TWCCWindow+1)
	if start > m.next {
		cov.clamped++
	}
	ext := start
	ps := pionUnmarshal(t, b[1:])
	it := Packets(b[1:])
	var prevLast int64 // last arrival of the previous packet, in 250 µs units
	var prevLen int
	for i, p := range ps {
		fb := p.(*rtcp.TransportLayerCC)
		if !it.Next() || it.Header().Length > TWCCMaxPacketLen {
			t.Fatalf("packet %d: %+v (limit %d), %v", i, it.Header(), TWCCMaxPacketLen, it.Err())
		}
		if fb.SenderSSRC != 0x11 || fb.MediaSSRC != 0x22 || fb.FbPktCount != m.fbCount {
			t.Fatalf("packet %d: SSRCs %#x %#x count %d, want count %d", i, fb.SenderSSRC, fb.MediaSSRC, fb.FbPktCount, m.fbCount)
		}
		m.fbCount++
		if fb.BaseSequenceNumber != uint16(ext) {
			t.Fatalf("packet %d starts at %d, want %d", i, fb.BaseSequenceNumber, uint16(ext))
		}
		st := pionStatuses(t, fb)
		if _, ours := ourStatuses(t, it.Packet()); !slices.Equal(ours, st) {
			t.Fatalf("packet %d: ParseTWCC read %v, pion %v", i, ours, st)
		}
		at := int64(fb.ReferenceTime) * TWCCRefTimeMicros
		firstRecv := true
		var last int64
		for _, s := range st {
			want, rec := m.arrival[ext]
			if s.received != rec {
				t.Fatalf("seq %d (ext %d): received %v, model %v", s.seq, ext, s.received, rec)
			}
			if rec {
				at += int64(s.delta) * TWCCDeltaMicros
				q := floorDiv(want, TWCCDeltaMicros)
				if ((at-q*TWCCDeltaMicros)%period+period)%period != 0 {
					t.Fatalf("seq %d: arrival %d read back as %d (mod %d)", s.seq, q*TWCCDeltaMicros, at, period)
				}
				if firstRecv && i > 0 {
					if d := q - prevLast; d >= -1<<15 && d < 1<<15 && prevLen <= TWCCMaxPacketLen-12 {
						t.Fatalf("packet %d started at seq %d for no reason: delta %d fits, previous packet %d octets", i, s.seq, d, prevLen)
					} else if d >= -1<<15 && d < 1<<15 {
						cov.sizeSplits++
					} else {
						cov.deltaSplits++
					}
				}
				firstRecv, last = false, q
				if s.delta < 0 {
					cov.negative++
				}
				if s.delta > 0xff || s.delta < 0 {
					cov.large++
				}
			} else if firstRecv && i > 0 && prevLen <= TWCCMaxPacketLen-12 {
				t.Fatalf("packet %d starts with a lost packet, previous one only %d octets", i, prevLen)
			} else if firstRecv && i > 0 {
				cov.sizeSplits++
				firstRecv = false // counted
			}
			ext++
		}
		for _, c := range fb.PacketChunks {
			switch c := c.(type) {
			case *rtcp.RunLengthChunk:
				cov.runs++
			case *rtcp.StatusVectorChunk:
				if c.SymbolSize == rtcp.TypeTCCSymbolSizeOneBit {
					cov.vec1++
				} else {
					cov.vec2++
				}
			}
		}
		prevLast, prevLen = last, it.Header().Length
	}
	if it.Next() || it.Err() != nil {
		t.Fatalf("Packets saw more than pion, or failed: %v", it.Err())
	}
	if ext != m.highest+1 {
		t.Fatalf("feedback ended at ext %d, want %d", ext-1, m.highest)
	}
	m.next = m.highest + 1
}

// TestTWCCRecorderRandom drives a recorder and the model with random
// traffic (loss, bursts of loss, reordering, duplicates, very late and
// ancient packets, pauses, wrap-around of sequence numbers and of the
// reference time, feedback both often and rarely) and checks every
// feedback against the model with pion as the parser.
func TestTWCCRecorderRandom(t *testing.T) {
	var cov twccCoverage
	for run := range 30 {
		rng := rand.New(rand.NewPCG(uint64(run), 99))
		var r TWCCRecorder
		m := &twccModel{arrival: make(map[int64]int64)}
		var at int64
		switch run % 3 {
		case 0:
			at = rng.Int64N(1 << 40)
		case 1:
			at = 1<<24*TWCCRefTimeMicros - 3_000*ms // the reference time wraps soon
		case 2:
			at = -rng.Int64N(1 << 30) // a clock that starts below zero
		}
		flushEvery := []int{3, 20, TWCCWindow - 100}[run%4%3]
		ext := int64(1<<20) + int64(rng.Uint32()>>16)
		for range 4000 {
			at += rng.Int64N(3 * ms)
			if rng.IntN(500) == 0 {
				at += 8_000*ms + rng.Int64N(10_000*ms) // a pause
			}
			var seq int64
			switch k := rng.IntN(100); {
			case k < 75:
				ext++
				if rng.IntN(10) == 0 {
					ext += rng.Int64N(30) // a burst lost
				}
				if rng.IntN(1000) == 0 {
					ext += 100 + rng.Int64N(6000) // the sender jumped
				}
				seq = ext
			case k < 92:
				seq = ext - 1 - rng.Int64N(40) // reordered
				cov.reordered++
			case k < 97:
				seq = ext - rng.Int64N(5) // duplicate, probably
			default:
				seq = ext - (TWCCWindow - 200) - rng.Int64N(400) // ancient: just in or out of the window
			}
			r.Record(uint16(seq), at)
			m.record(seq, at)
			if rng.IntN(flushEvery) == 0 {
				checkFeedback(t, &r, m, &cov)
			}
		}
		checkFeedback(t, &r, m, &cov)
	}
	t.Logf("coverage: %+v", cov)
	if cov.sizeSplits == 0 || cov.deltaSplits == 0 || cov.negative == 0 || cov.large == 0 ||
		cov.runs == 0 || cov.vec1 == 0 || cov.vec2 == 0 || cov.clamped == 0 {
		t.Fatalf("the random traffic missed a case: %+v", cov)
	}
}
