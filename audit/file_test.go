package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/invigil/invigil/room"
	"go.uber.org/goleak"
)

// TestMain checks for leaks; go-redis's pool keeps redialling a dead
// server for a moment after its client is closed (its own goroutine).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

func TestFileStoreAppendList(t *testing.T) {
	dir := t.TempDir()
	s, err := NewFileStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Concurrent appends to two rooms: each room's seqs are 1..n, no gaps.
	var wg sync.WaitGroup
	for _, r := range []string{"exam/1", "exam 2"} {
		for i := range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Append(ctx, r, room.Event{Kind: room.EventJoin, Actor: fmt.Sprint(i)}); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for _, r := range []string{"exam/1", "exam 2"} {
		evs, err := s.List(ctx, r, 0, 1000)
		if err != nil || len(evs) != 50 {
			t.Fatalf("%s: %d events, %v", r, len(evs), err)
		}
		for i, e := range evs {
			if e.Seq != int64(i+1) {
				t.Fatalf("%s: event %d has seq %d", r, i, e.Seq)
			}
		}
		tail, _ := s.List(ctx, r, 45, 1000)
		if len(tail) != 5 || tail[0].Seq != 46 {
			t.Errorf("after=45 gave %v", tail)
		}
		page, _ := s.List(ctx, r, 0, 10)
		if len(page) != 10 {
			t.Errorf("limit 10 gave %d", len(page))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The room name with a slash is one file in dir, not a subdirectory.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries", len(entries))
	}

	// A torn last line (a crash mid-write) is cut; numbering continues.
	path := filepath.Join(dir, "exam%2F1.jsonl")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":51,"kind":"jo`)
	f.Close()
	s2, err := NewFileStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	e, err := s2.Append(ctx, "exam/1", room.Event{Kind: room.EventLeave})
	if err != nil || e.Seq != 51 {
		t.Fatalf("after reopening: seq %d, %v; want 51", e.Seq, err)
	}
	evs, _ := s2.List(ctx, "exam/1", 49, 100)
	if len(evs) != 2 || evs[1].Kind != room.EventLeave {
		t.Errorf("after recovery: %+v", evs)
	}
	if evs, _ := s2.List(ctx, "never", 0, 10); len(evs) != 0 {
		t.Errorf("unknown room: %v", evs)
	}
}
