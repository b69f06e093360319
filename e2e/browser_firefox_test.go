package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	// firefoxHardTimeout bounds a Firefox scenario: Firefox's and
	// Chromium's start-up, the grid, two switches, three holds and the
	// pause checks.
	firefoxHardTimeout = 3 * time.Minute
	// maxDecodeGap is the longest the proctor may go without decoding a
	// new frame of the student while a switch is under way: a switch waits
	// for a keyframe of the other layer, not for seconds.
	maxDecodeGap = time.Second
)

// TestFirefoxStudentSimulcast: a student in Firefox ESR, the proctor in
// Chromium, against a real `invigil serve`. Firefox publishes its camera as
// rid simulcast (q, h) and, while nobody focuses it, sends only q (from
// Firefox's own outbound-rtp per rid); the proctor's grid tile decodes the
// low layer; clicking it brings the high layer within switchTimeout, and
// clicking again the low one, with frames decoded throughout.
func TestFirefoxStudentSimulcast(t *testing.T) {
	s := newFirefoxScene(t)
	s.sc.students["fox"] = s.ff.open(t, "student-fox", s.link(t, "student", "fox", "Fox"))
	s.sc.proctor = s.br.openTab(t, "proctor", s.link(t, "proctor", "pat", "Pat"))
	s.sc.focusCycle("fox")
}

// TestFirefoxProctorSimulcast: a student in Chromium, the proctor in Firefox
// ESR, against a real `invigil serve`: the Firefox proctor's tile
// (data-identity) decodes the low layer, clicking it brings the high layer
// within switchTimeout and clicking again the low one, read from Firefox's
// inbound-rtp frameHeight and framesDecoded.
func TestFirefoxProctorSimulcast(t *testing.T) {
	s := newFirefoxScene(t)
	s.sc.students["chris"] = s.br.openTab(t, "student-chris", s.link(t, "student", "chris", "Chris"))
	s.sc.proctor = s.ff.open(t, "proctor", s.link(t, "proctor", "pat", "Pat"))
	s.sc.focusCycle("chris")
}

// firefoxScene is a real `invigil serve`, a headless Chromium and a
// headless Firefox ESR, all stopped when the test ends or
// firefoxHardTimeout passes, with a leak check on the test.
type firefoxScene struct {
	srv *server
	br  *browser
	ff  *firefox
	sc  *simScenario // its proctor and students are for the test to open
}

func newFirefoxScene(t *testing.T) *firefoxScene {
	t.Helper()
	driver := requireFirefox(t)
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), firefoxHardTimeout)
	t.Cleanup(cancel)
	// Debug logs (a few dozen lines a run) show the node's congestion
	// decisions in a failure's server log.
	srv := startServer(t, ctx, bin, apiSecret, "--log-level", "debug")
	t.Cleanup(func() {
		if t.Failed() {
			explainCongestion(t, srv)
		}
	})
	// Chromium first, so Firefox's cleanup (which runs first) screenshots
	// its pages while the peer in Chromium is still there.
	br := startBrowser(t, ctx, chromium)
	// The node's origin gets a remembered camera permission, without which
	// Firefox offers a proctor's page no 127.0.0.1 candidate.
	ff := startFirefox(t, ctx, driver, strings.TrimSuffix(srv.url("/"), "/"))
	return &firefoxScene{
		srv: srv,
		br:  br,
		ff:  ff,
		sc:  &simScenario{t: t, ctx: ctx, srv: srv, students: make(map[string]webPage)},
	}
}

// explainCongestion logs the machine's load and the node's congestion
// decisions: a proctor browser starved of CPU reports a low REMB estimate,
// and the node then rightly caps a focused student to the low layer
// (sfu/bandwidth.go), which reads like a failed switch.
func explainCongestion(t *testing.T, srv *server) {
	t.Helper()
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("load average at the failure: %s (%d CPUs)", strings.TrimSpace(string(load)), runtime.NumCPU())
	}
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		if strings.Contains(line, "downlink congested") || strings.Contains(line, "downlink recovered") {
			t.Logf("node: %s", strings.TrimSpace(line))
		}
	}
}

// link is the URL of role's page for identity in the test room, with a
// token minted for them.
func (s *firefoxScene) link(t *testing.T, role, identity, name string) string {
	t.Helper()
	return s.srv.url("/" + role + "#token=" + s.srv.token(t, s.sc.ctx, room, identity, role, name))
}

// decodeWatch tracks the longest time a tile went without a new decoded
// frame, from the stats polled while a switch is awaited.
type decodeWatch struct {
	frames  int
	at      time.Time
	longest time.Duration
}

// start begins watching from frames decoded now.
func (w *decodeWatch) start(frames int) {
	w.frames, w.at = frames, time.Now()
}

// see records a poll's frame count.
func (w *decodeWatch) see(frames int) {
	now := time.Now()
	w.longest = max(w.longest, now.Sub(w.at))
	if frames > w.frames {
		w.frames, w.at = frames, now
	}
}

// focusCycle runs the proctor's focus cycle on one student, whichever
// browser each side is in: the grid tile decodes the low layer while the
// student publishes q and h but sends only q; clicking the tile brings the
// high layer within switchTimeout while the student sends q and h; clicking
// again brings the low layer back and h pauses again. The proctor keeps
// decoding new frames throughout, on one inbound SSRC.
func (sc *simScenario) focusCycle(id string) {
	t := sc.t
	t.Helper()
	student := sc.students[id]

	var grid simState
	took := sc.waitUntil("grid at the low layer", mediaTimeout, pollInterval, func() (bool, string) {
		grid = readSim(t, sc.proctor)
		v := grid.tile(id).Video
		st := readSim(t, student)
		return v.FramesDecoded >= 10 && slices.Equal(st.cameraLayers(), []string{"q"}),
			fmt.Sprintf("proctor: %s's tile decoded %d frames (%+v); %s is %s/%s and sends %v (want [q]); encodings %s",
				id, v.FramesDecoded, v, id, st.ClientState, st.ConnectionState, st.cameraLayers(), st.encodings())
	})
	st := readSim(t, student)
	var rids []string
	for _, o := range st.Outbound {
		rids = append(rids, o.RID)
	}
	slices.Sort(rids)
	tl := grid.tile(id)
	t.Logf("grid after %v: %s publishes rids %v (%s); the proctor's %.0fpx tile decodes %dx%d (%s), %d frames",
		took.Round(time.Millisecond), id, rids, st.encodings(), tl.Height, tl.Video.FrameWidth, tl.Video.FrameHeight, tl.Video.Codec, tl.Video.FramesDecoded)
	if !slices.Equal(rids, []string{"h", "q"}) {
		t.Errorf("%s publishes encodings %v, want simulcast q and h", id, rids)
	}
	if tl.Video.FrameHeight > lowMaxHeight {
		t.Errorf("grid: %s's tile decodes %d lines, want ≤ %d (the low layer)", id, tl.Video.FrameHeight, lowMaxHeight)
	}
	if !strings.EqualFold(tl.Video.Codec, "video/VP8") {
		t.Errorf("grid: %s's tile decodes %q, want video/VP8 (the SDK prefers it)", id, tl.Video.Codec)
	}
	sc.checkPaused()
	// A control window as long as the cycle's two holds, before any
	// click: the freezes the machine itself causes without a switch (see
	// TestBrowserSimulcastFocus). The cycle may add at most maxFreezes.
	idleFrom := readSim(t, sc.proctor)
	control := sc.hold("control, no switch", idleFrom, map[string][2]int{id: {0, lowMaxHeight}})
	start := sc.hold("control, no switch", control, map[string][2]int{id: {0, lowMaxHeight}})
	idle := start.tile(id).Video.FreezeCount - idleFrom.tile(id).Video.FreezeCount

	// switchTo clicks the tile and waits for done. It returns the state
	// and the time from the click's start: the click's own round trip
	// (through Node and BiDi for Firefox) can be most of a fast switch.
	var watch decodeWatch
	switchTo := func(what string, done func(v simInbound) bool) (simState, time.Duration) {
		t.Helper()
		var cur simState
		watch.start(readSim(t, sc.proctor).tile(id).Video.FramesDecoded)
		clicked := time.Now()
		sc.click(id)
		sc.waitUntil(what, switchTimeout, switchPoll, func() (bool, string) {
			cur = readSim(t, sc.proctor)
			v := cur.tile(id).Video
			watch.see(v.FramesDecoded)
			st := readSim(t, student)
			return done(v), fmt.Sprintf("%s's tile decodes %dx%d (%d frames); %s sends %v; encodings %s",
				id, v.FrameWidth, v.FrameHeight, v.FramesDecoded, id, st.cameraLayers(), st.encodings())
		})
		took := time.Since(clicked)
		if took > switchTimeout {
			t.Errorf("%s: took %v from the click, want ≤ %v", what, took.Round(time.Millisecond), switchTimeout)
		}
		return cur, took
	}

	// Focus: the high layer within switchTimeout.
	focus, took := switchTo(id+" at the high layer", func(v simInbound) bool { return v.FrameHeight >= highMinHeight })
	t.Logf("focus: %s's tile decodes %dx%d %v after the click", id, focus.tile(id).Video.FrameWidth, focus.tile(id).Video.FrameHeight, took.Round(time.Millisecond))
	if st := readSim(t, student); !slices.Equal(st.cameraLayers(), []string{"q", "h"}) {
		t.Errorf("while focused, %s sends %v, want [q h]; encodings %s", id, st.cameraLayers(), st.encodings())
	}
	focus = sc.hold("focus", focus, map[string][2]int{id: {highMinHeight, 10000}})

	// Back to the grid: the low layer within switchTimeout, and h paused.
	focusFrames := focus.tile(id).Video.FramesDecoded
	back, took := switchTo(id+" back at the low layer", func(v simInbound) bool {
		return v.FrameHeight <= lowMaxHeight && v.FramesDecoded > focusFrames
	})
	t.Logf("unfocus: %s's tile decodes %dx%d %v after the second click", id, back.tile(id).Video.FrameWidth, back.tile(id).Video.FrameHeight, took.Round(time.Millisecond))
	sc.waitUntil(id+" told to pause h again", switchTimeout, switchPoll, func() (bool, string) {
		st := readSim(t, student)
		return slices.Equal(st.cameraLayers(), []string{"q"}), fmt.Sprintf("%s sends %v", id, st.cameraLayers())
	})
	back = sc.hold("grid again", back, map[string][2]int{id: {0, lowMaxHeight}})
	sc.checkPaused()

	s, e := start.tile(id).Video, back.tile(id).Video
	t.Logf("over focus/unfocus: %s decoded %d frames, %d keyframes, %d dropped, %d freezes (%.2fs), longest gap between new frames while switching %v, ssrc %d→%d",
		id, e.FramesDecoded-s.FramesDecoded, e.KeyFramesDecoded-s.KeyFramesDecoded, e.FramesDropped-s.FramesDropped,
		e.FreezeCount-s.FreezeCount, e.TotalFreezesDuration-s.TotalFreezesDuration, watch.longest.Round(time.Millisecond), s.SSRC, e.SSRC)
	if watch.longest > maxDecodeGap {
		t.Errorf("the proctor decoded no new frame of %s for %v during a switch, want ≤ %v", id, watch.longest.Round(time.Millisecond), maxDecodeGap)
	}
	if n := e.FreezeCount - s.FreezeCount; n > maxFreezes+idle {
		t.Errorf("%s froze %d times over the switches, want ≤ %d (%d, plus the %d of the control window without a switch)", id, n, maxFreezes+idle, maxFreezes, idle)
	}
	if n := e.FramesDropped - s.FramesDropped; n > maxDroppedFrames {
		t.Errorf("%s: %d frames dropped over the switches, want ≤ %d", id, n, maxDroppedFrames)
	}
	if s.SSRC != e.SSRC {
		t.Errorf("%s's inbound SSRC changed %d → %d; the switch must look like one stream", id, s.SSRC, e.SSRC)
	}
}
