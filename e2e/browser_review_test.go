package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// reviewManifest is what the review test reads of a listed manifest.
type reviewManifest struct {
	Session string    `json:"session"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
	Files   []struct {
		Name   string    `json:"name"`
		Source string    `json:"source"`
		Start  time.Time `json:"start"`
	} `json:"files"`
	Gaps []struct {
		Source string `json:"source"`
		Reason string `json:"reason"`
	} `json:"gaps"`
}

// reviewVideo is one video of the review page as the test reads it: the
// session-clock position it shows (its segment's start + currentTime).
type reviewVideo struct {
	Track    string  `json:"track"`
	State    string  `json:"state"`
	Position float64 `json:"position"` // ms from the session's start; -1 with no segment loaded
	Time     float64 `json:"time"`
	Ready    int     `json:"ready"`
}

const reviewVideosJS = `JSON.stringify([...document.querySelectorAll('[data-session] video[data-track]')].map((v) => ({
  track: v.dataset.track, state: v.closest('figure').dataset.state, time: v.currentTime, ready: v.readyState,
  position: v.dataset.segmentStart === undefined || v.seeking ? -1 : Number(v.dataset.segmentStart) + v.currentTime * 1000,
})))`

// TestBrowserReview: a Chromium student is recorded in 5-second segments;
// the screen share starts 5 s after the camera, the camera stalls for 3 s
// (a gap) and a violation is reported. Then /review with a reviewer token
// shows the session: its camera and screen videos play (currentTime
// advances), the violation is on the timeline, clicking it puts every
// video within 1 s of the violation's offset from the session's start on
// the shared clock, the camera's gap is drawn, and the manifest's
// signature and files check out in the page.
func TestBrowserReview(t *testing.T) {
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)
	srv := startServer(t, ctx, bin, apiSecret, "--record", "--recording-segment", "5s")
	// The page offers screen sharing when the token requires it.
	studentToken := srv.mint(t, ctx, "--api-secret", apiSecret, "--room", room, "--identity", "alice", "--role", "student", "--name", "Alice", "--require", "camera,screen")
	reviewerToken := srv.token(t, ctx, room, "rev", "reviewer", "Reviewer")
	adminToken := srv.token(t, ctx, "*", "api", "admin", "API")

	br := startBrowser(t, ctx, chromium)
	student := br.openTab(t, "student-reviewed", srv.url("/student#token="+studentToken))
	tabs := []*tab{student}
	encoded := func(kind string) string {
		return fmt.Sprintf(`(async () => {
  const pc = window.invigilClient?.peerConnection; let n = 0;
  if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video' && %s) n += s.framesEncoded ?? 0; });
  return String(n);
})()`, kind)
	}
	waitFor(t, tabs, "the camera encoding", func() (bool, string) {
		n := mustEval[string](t, student, encoded("true"))
		return n != "0", n
	})
	cameraAt := time.Now()
	waitFor(t, tabs, "the share-screen button", func() (bool, string) {
		got := mustEval[string](t, student, `(() => { const b = document.getElementById('share-screen'); return b && !b.hidden ? 'shown' : 'hidden'; })()`)
		return got == "shown", got
	})
	time.Sleep(time.Until(cameraAt.Add(5 * time.Second))) // the scenario: the screen 5 s after the camera
	mustEval[string](t, student, `(document.getElementById('share-screen').click(), 'ok')`)
	time.Sleep(3 * time.Second)

	// The camera stalls: its sender sends nothing for 3 s (the recorder
	// marks a gap after 1 s), then resumes.
	mustEval[string](t, student, `(async () => {
  const cam = window.invigilClient.localStream.getVideoTracks()[0];
  const s = window.invigilClient.peerConnection.getSenders().find((x) => x.track === cam);
  window.__cameraSender = s; window.__camera = cam;
  await s.replaceTrack(null); return 'stalled';
})()`)
	time.Sleep(3 * time.Second)
	mustEval[string](t, student, `(async () => { await window.__cameraSender.replaceTrack(window.__camera); return 'resumed'; })()`)
	time.Sleep(3 * time.Second)
	mustEval[bool](t, student, `(window.invigilClient.reportViolation('phone_detected', {detector: 'e2e'}), true)`)
	time.Sleep(4 * time.Second)
	if _, err := evaluate[bool](student, `window.invigilClient.leave().then(() => true)`); err != nil {
		t.Fatalf("student leaving: %v", err)
	}

	getJSON := func(path, token string, v any) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url(path), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d", path, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	var m reviewManifest
	waitFor(t, tabs, "alice's finished recording listed", func() (bool, string) {
		var listing struct {
			Recordings []reviewManifest `json:"recordings"`
		}
		getJSON("/v1/rooms/"+room+"/recordings", reviewerToken, &listing)
		if len(listing.Recordings) != 1 || listing.Recordings[0].Ended.IsZero() {
			return false, fmt.Sprintf("%d recordings", len(listing.Recordings))
		}
		m = listing.Recordings[0]
		return true, ""
	})
	var cameraFiles int
	var screenStart, cameraStart time.Time
	for _, f := range m.Files {
		switch f.Source {
		case "camera":
			cameraFiles++
			if cameraStart.IsZero() || f.Start.Before(cameraStart) {
				cameraStart = f.Start
			}
		case "screen":
			if screenStart.IsZero() || f.Start.Before(screenStart) {
				screenStart = f.Start
			}
		}
	}
	if cameraFiles < 2 || screenStart.IsZero() {
		t.Fatalf("the manifest has %d camera segments and screen start %v; want >= 2 and a screen: %+v", cameraFiles, screenStart, m.Files)
	}
	if d := screenStart.Sub(cameraStart); d < 4*time.Second || d > 8*time.Second {
		t.Errorf("the screen's first segment starts %v after the camera's, want about 5 s", d)
	}
	var cameraGap bool
	for _, g := range m.Gaps {
		cameraGap = cameraGap || g.Source == "camera"
	}
	if !cameraGap {
		t.Fatalf("no camera gap in the manifest: %+v", m.Gaps)
	}
	var trail struct {
		Events []struct {
			Seq     int64          `json:"seq"`
			Time    time.Time      `json:"time"`
			Kind    string         `json:"kind"`
			Details map[string]any `json:"details"`
		} `json:"events"`
	}
	getJSON("/v1/rooms/"+room+"/events", adminToken, &trail)
	var violationSeq int64
	var violationAt time.Time
	for _, e := range trail.Events {
		if e.Kind == "violation" {
			violationSeq, violationAt = e.Seq, e.Time
		}
	}
	if violationSeq == 0 {
		t.Fatal("no violation in the trail")
	}
	sessionStart := m.Started
	for _, f := range m.Files {
		if f.Start.Before(sessionStart) {
			sessionStart = f.Start
		}
	}
	offset := float64(violationAt.Sub(sessionStart).Milliseconds())

	review := br.openTab(t, "review", srv.url("/review#token="+reviewerToken))
	tabs = append(tabs, review)
	sel := fmt.Sprintf(`[data-session="%s"]`, m.Session)
	waitFor(t, tabs, "the session open with camera and screen videos", func() (bool, string) {
		got := mustEval[string](t, review, fmt.Sprintf(`(() => { const s = document.querySelector('%s');
  return s ? s.dataset.open + ' ' + [...s.querySelectorAll('video[data-track]')].map((v) => v.dataset.track).sort().join(',') : 'none'; })()`, sel))
		return got == "true camera,screen", got
	})
	mustEval[string](t, review, `(document.querySelector('[data-session] .play').click(), 'ok')`)
	var first []reviewVideo
	evalJSON(t, review, reviewVideosJS, &first)
	waitFor(t, tabs, "the camera video playing (currentTime advancing)", func() (bool, string) {
		var now []reviewVideo
		raw := evalJSON(t, review, reviewVideosJS, &now)
		for i, v := range now {
			if v.Track == "camera" && v.Time > first[i].Time+1 && v.State == "playing" {
				return true, raw
			}
		}
		return false, raw
	})
	if got := mustEval[string](t, review, `document.querySelector('[data-session] .gap[data-source="camera"]') ? 'drawn' : 'none'`); got != "drawn" {
		t.Errorf("the camera's gap is not drawn (%s)", got)
	}
	waitFor(t, tabs, "the manifest checked in the page", func() (bool, string) {
		got := mustEval[string](t, review, `(() => { const v = document.querySelector('[data-session] .session-verify'); return v.dataset.verified + ': ' + v.textContent; })()`)
		return strings.HasPrefix(got, "ok: "), got
	})

	// Pause, then click the violation: every video goes to its instant.
	mustEval[string](t, review, `(document.querySelector('[data-session] .play').click(), 'ok')`)
	entry := fmt.Sprintf(`[data-session] li[data-seq="%d"]`, violationSeq)
	if got := mustEval[string](t, review, fmt.Sprintf(`document.querySelector('%s')?.dataset.kind ?? 'none'`, entry)); got != "violation" {
		t.Fatalf("the violation's timeline entry: %s", got)
	}
	mustEval[string](t, review, fmt.Sprintf(`(document.querySelector('%s').click(), 'ok')`, entry))
	waitFor(t, tabs, fmt.Sprintf("every video within 1 s of the violation at %.0f ms", offset), func() (bool, string) {
		var vs []reviewVideo
		raw := evalJSON(t, review, reviewVideosJS, &vs)
		if len(vs) != 2 {
			return false, raw
		}
		for _, v := range vs {
			if v.Ready < 2 || v.Position < 0 || math.Abs(v.Position-offset) > 1000 {
				return false, raw
			}
		}
		return true, raw
	})
}
