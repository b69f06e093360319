package turn

import (
	"sync"
	"time"
)

// bucketBurst is how much traffic above the rate one allocation may send
// at once: one second's worth. A video keyframe arrives as a burst of
// packets well above the average rate, and dropping part of a keyframe
// costs a retransmission round or a new keyframe request.
const bucketBurst = time.Second

// tokenBucket is a byte-rate limiter for one direction of one allocation.
// It is driven by the caller's clock so tests need no sleeps.
type tokenBucket struct {
	rate  float64 // bytes per second
	burst float64 // bytes

	mu     sync.Mutex // guards tokens and last
	tokens float64    // bytes that may pass now; negative while paying back a delay
	last   time.Time  // when tokens was last brought up to date
}

// newTokenBucket returns a full bucket for bitsPerSecond, or nil (no cap)
// when bitsPerSecond is not positive.
func newTokenBucket(bitsPerSecond int, now time.Time) *tokenBucket {
	if bitsPerSecond <= 0 {
		return nil
	}
	rate := float64(bitsPerSecond) / 8
	burst := rate * bucketBurst.Seconds()
	return &tokenBucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// refill brings tokens up to now. b.mu must be held.
func (b *tokenBucket) refill(now time.Time) {
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
}

// allow takes n bytes if the bucket holds them and reports whether it did:
// the policy for datagrams, which are dropped rather than delayed.
func (b *tokenBucket) allow(now time.Time, n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.tokens < float64(n) {
		return false
	}
	b.tokens -= float64(n)
	return true
}

// reserve takes n bytes, going into debt if it must, and returns how long
// the caller has to wait before the debt is paid: the policy for a TCP
// stream, which is paced rather than cut.
func (b *tokenBucket) reserve(now time.Time, n int) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
