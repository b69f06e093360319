package main

import (
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestMediaWatchdog: a connected student whose camera stops sending
// raises media_stalled within --stall-after + 1 s, seen live by the
// proctor, and media_resumed when it sends again.
func TestMediaWatchdog(t *testing.T) {
	const stallAfter = time.Second
	srv := startServe(t, "--api-secret", secret, "--stall-after", stallAfter.String())
	proctor := testclient.Join(t, wsURL(srv.base), secret, "exam-w", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-w", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })

	// waitEvent reads the proctor's live events for kind about alice.
	waitEvent := func(kind string, within time.Duration) map[string]any {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m := <-proctor.Events:
				if m.Type == "event" && m.Event.Kind == kind && m.Event.Subject == "alice" {
					return m.Event.Details
				}
			case <-deadline:
				t.Fatalf("no %s event for alice within %v", kind, within)
				return nil
			}
		}
	}
	alice.StopVideo.Store(true)
	stopped := time.Now()
	d := waitEvent(room.EventMediaStalled, stallAfter+time.Second+500*time.Millisecond)
	if took := time.Since(stopped); took > stallAfter+time.Second {
		t.Errorf("media_stalled came %v after the camera stopped, want within %v", took, stallAfter+time.Second)
	}
	if d["source"] != "camera" || d["cause"] != "silence" {
		t.Errorf("media_stalled details %v, want source camera, cause silence", d)
	}
	time.Sleep(500 * time.Millisecond) // the camera stays dead a while past the stall
	alice.StopVideo.Store(false)
	d = waitEvent(room.EventMediaResumed, 3*time.Second)
	if ms, _ := d["stalled_ms"].(float64); ms < float64(stallAfter.Milliseconds()) {
		t.Errorf("media_resumed details %v: stalled_ms below the stall", d)
	}

	// Packets keep coming but the bitrate collapses (a covered camera, a
	// starved uplink): stalled with cause bitrate within two windows.
	time.Sleep(3 * stallAfter) // a healthy window first
	alice.Starve.Store(true)
	d = waitEvent(room.EventMediaStalled, 2*stallAfter+time.Second)
	if d["cause"] != "bitrate" {
		t.Errorf("media_stalled details %v, want cause bitrate", d)
	}
	if bps, _ := d["bitrate_bps"].(float64); bps >= room.CollapseBitrate {
		t.Errorf("media_stalled at %v b/s, not below %d", bps, room.CollapseBitrate)
	}
	alice.Starve.Store(false)
	d = waitEvent(room.EventMediaResumed, 2*stallAfter+time.Second)
	if d["cause"] != "bitrate" {
		t.Errorf("media_resumed details %v, want cause bitrate", d)
	}
}
