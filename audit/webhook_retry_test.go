package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
)

// TestResolveDeadLetters: both cursor stores drop exactly the dead
// letters resolved (by room and seq), keep the others in order, and a
// dead letter added after the resolve stays.
func TestResolveDeadLetters(t *testing.T) {
	rs := testredis.Start(t, 0)
	stores := map[string]Cursors{
		"file":  newFileCursors(t),
		"redis": NewRedisCursors(newRedisClient(t, rs.URL()), "invigil:", "ep"),
	}
	for name, c := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d := func(roomName string, seq int64) DeadLetter {
				return DeadLetter{Room: roomName, Event: room.Event{Seq: seq, Kind: "join", Details: map[string]any{"n": 1e6}}, Attempts: 2, At: time.Now()}
			}
			for _, x := range []DeadLetter{d("a", 1), d("a", 2), d("b", 1), d("a:b", 3)} {
				if err := c.DeadLetter(ctx, x); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Resolve(ctx, []DeadLetter{d("a", 1), d("b", 1), d("zz", 9)}); err != nil {
				t.Fatal(err)
			}
			if err := c.DeadLetter(ctx, d("c", 5)); err != nil {
				t.Fatal(err)
			}
			left, err := c.DeadLetters(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, x := range left {
				got = append(got, fmt.Sprintf("%s:%d", x.Room, x.Event.Seq))
			}
			if fmt.Sprint(got) != "[a:2 a:b:3 c:5]" {
				t.Errorf("left %v, want [a:2 a:b:3 c:5]", got)
			}
		})
	}
}
