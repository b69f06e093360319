package turn

import (
	"testing"
	"time"
)

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	if newTokenBucket(0, t0) != nil || newTokenBucket(-1, t0) != nil {
		t.Fatal("a non-positive rate must mean no bucket")
	}
	b := newTokenBucket(8000, t0) // 1000 bytes/s, burst 1000 bytes
	if !b.allow(t0, 600) || !b.allow(t0, 400) {
		t.Fatal("the burst must pass at once")
	}
	if b.allow(t0, 1) {
		t.Fatal("an empty bucket let a byte through")
	}
	if !b.allow(t0.Add(100*time.Millisecond), 100) || b.allow(t0.Add(100*time.Millisecond), 1) {
		t.Fatal("100 ms must refill exactly 100 bytes")
	}
	if !b.allow(t0.Add(time.Hour), 1000) || b.allow(t0.Add(time.Hour), 1) {
		t.Fatal("refill must stop at the burst")
	}

	b = newTokenBucket(8000, t0)
	if d := b.reserve(t0, 1000); d != 0 {
		t.Fatalf("reserve within the burst waits %v", d)
	}
	if d := b.reserve(t0, 500); d != 500*time.Millisecond {
		t.Fatalf("reserve 500 bytes over: wait %v, want 500ms", d)
	}
	if d := b.reserve(t0.Add(500*time.Millisecond), 100); d != 100*time.Millisecond {
		t.Fatalf("after paying the debt: wait %v, want 100ms", d)
	}
}
