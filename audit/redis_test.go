package audit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// newRedisClient connects to a test's redis-server and closes the
// connection when the test ends.
func newRedisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisStoreSequence: concurrent appends to one room get gap-free,
// unique sequence numbers; List pages by seq.
func TestRedisStoreSequence(t *testing.T) {
	rs := testredis.Start(t, 0)
	ev := NewRedisStore(newRedisClient(t, rs.URL()), "")
	ctx := context.Background()
	var wg sync.WaitGroup
	seen := make(chan int64, 100)
	for i := range 100 {
		wg.Go(func() {
			e, err := ev.Append(ctx, "exam-1", room.Event{Time: time.Now().UTC(), Kind: "note", Actor: "p", Details: map[string]any{"i": i}})
			if err != nil {
				t.Error(err)
				return
			}
			seen <- e.Seq
		})
	}
	wg.Wait()
	close(seen)
	got := map[int64]bool{}
	for s := range seen {
		if got[s] || s < 1 || s > 100 {
			t.Errorf("seq %d repeated or out of 1..100", s)
		}
		got[s] = true
	}
	page, err := ev.List(ctx, "exam-1", 50, 10)
	if err != nil || len(page) != 10 || page[0].Seq != 51 || page[9].Seq != 60 || page[0].Kind != "note" {
		t.Fatalf("List(after 50, 10): %+v, %v", page, err)
	}
	if other, _ := ev.List(ctx, "exam-2", 0, 10); len(other) != 0 {
		t.Errorf("another room has %d events", len(other))
	}
}
