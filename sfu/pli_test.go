package sfu

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestPLIThrottle: a burst of keyframe requests for one layer becomes one
// PLI at once and one more when the interval ends, never a storm, and
// never a lost request.
func TestPLIThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, _ := testTrack(QualityLow, QualityHigh)
		tr.pliGap = 500 * time.Millisecond
		var mu sync.Mutex // guards pli, written by the deferred PLI's timer
		var pli []uint32
		tr.sendPLI = func(ssrc uint32) bool {
			mu.Lock()
			defer mu.Unlock()
			pli = append(pli, ssrc)
			return true
		}
		sentPLIs := func() []uint32 {
			mu.Lock()
			defer mu.Unlock()
			return append([]uint32(nil), pli...)
		}
		for range 20 {
			tr.RequestKeyframe(QualityHigh)
		}
		sent := sentPLIs()
		if len(sent) != 1 || sent[0] != 102 {
			t.Fatalf("burst sent %v, want one PLI for the high layer's SSRC 102", sent)
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if sent = sentPLIs(); len(sent) != 1 {
			t.Fatalf("PLI inside the interval: %v", sent)
		}
		time.Sleep(450 * time.Millisecond)
		synctest.Wait()
		if sent = sentPLIs(); len(sent) != 2 {
			t.Fatalf("the folded requests were not sent when the interval ended: %v", sent)
		}
		// Layers are throttled apart: the low layer's PLI goes now.
		tr.RequestKeyframe(QualityLow)
		if sent = sentPLIs(); len(sent) != 3 || sent[2] != 100 {
			t.Fatalf("low layer PLI: %v", sent)
		}
		if s := tr.stats.snapshot(); s.PLIsSent != 3 || s.PLIsThrottled != 19 {
			t.Errorf("stats %+v", s)
		}
	})
}
