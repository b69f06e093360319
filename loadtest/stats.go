package loadtest

import (
	"math"
	"slices"
	"time"
)

// seqWindow is how far back (in packets) a late packet, such as a
// retransmission, still fills its gap: 1,024 packets are over 10 s of a
// 500 kb/s layer, far beyond any NACK round trip.
const seqWindow = 1024

// seqTracker counts one received RTP stream's sequence numbers: the span
// from the first to the highest seen (extended past 16-bit wrap-around),
// how many distinct ones arrived, how many arrived late (filling a gap,
// which on loopback means a retransmission), and duplicates. It is owned
// by the stream's reader and needs no lock.
type seqTracker struct {
	started         bool
	first, highest  int64
	received        int64
	late, duplicate int64
	window          [seqWindow / 64]uint64 // bit i: ext seq ≡ i (mod seqWindow) arrived
}

func (t *seqTracker) bit(ext int64) (word int, mask uint64) {
	i := int(ext & (seqWindow - 1))
	return i / 64, 1 << (i % 64)
}

// add records one packet's sequence number.
func (t *seqTracker) add(seq uint16) {
	if !t.started {
		t.started = true
		t.first, t.highest = int64(seq), int64(seq)
		t.received = 1
		w, m := t.bit(t.highest)
		t.window[w] |= m
		return
	}
	ext := t.highest + int64(int16(seq-uint16(t.highest)))
	switch {
	case ext > t.highest:
		// Forget the bits the window slides past.
		if ext-t.highest >= seqWindow {
			clear(t.window[:])
		} else {
			for e := t.highest + 1; e <= ext; e++ {
				w, m := t.bit(e)
				t.window[w] &^= m
			}
		}
		t.highest = ext
	case ext <= t.highest-seqWindow:
		return // too old to tell; counted as lost
	default:
		if w, m := t.bit(ext); t.window[w]&m != 0 {
			t.duplicate++
			return
		}
		t.late++
	}
	if ext < t.first {
		t.first = ext
	}
	w, m := t.bit(ext)
	t.window[w] |= m
	t.received++
}

// expected is the span of sequence numbers the stream covered.
func (t *seqTracker) expected() int64 {
	if !t.started {
		return 0
	}
	return t.highest - t.first + 1
}

// lost is how many of them never arrived.
func (t *seqTracker) lost() int64 { return max(0, t.expected()-t.received) }

// Delay histogram: 50 µs buckets to 50 ms, then 1 ms buckets to ~1 s,
// then one overflow bucket. One-way delay on loopback is well under a
// millisecond when the server keeps up, so the fine buckets matter.
const (
	fineBucket   = 50 * time.Microsecond
	fineBuckets  = 1000
	coarseBucket = time.Millisecond
	coarseStart  = fineBucket * fineBuckets
	histBuckets  = fineBuckets + 1000 + 1
)

// delayHist counts one-way delays. Each stream reader owns one; they are
// merged after the readers end.
type delayHist struct {
	n       int64
	buckets [histBuckets]uint32
}

func (h *delayHist) add(d time.Duration) {
	var i int
	switch {
	case d < 0:
		i = 0
	case d < coarseStart:
		i = int(d / fineBucket)
	default:
		i = min(fineBuckets+int((d-coarseStart)/coarseBucket), histBuckets-1)
	}
	h.buckets[i]++
	h.n++
}

func (h *delayHist) merge(o *delayHist) {
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
	h.n += o.n
}

// quantile returns the upper edge of the bucket holding quantile q, so
// a reported p99 is never better than the truth by more than a bucket.
func (h *delayHist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var seen int64
	for i, c := range h.buckets {
		seen += int64(c)
		if seen >= max(rank, 1) {
			if i < fineBuckets {
				return time.Duration(i+1) * fineBucket
			}
			return coarseStart + time.Duration(i-fineBuckets+1)*coarseBucket
		}
	}
	return coarseStart + 1000*coarseBucket
}

// percentile is the nearest-rank quantile q of xs, which it sorts.
func percentile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// ms renders a duration as milliseconds with two decimals, for JSON.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*100) / 100
}
