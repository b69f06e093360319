package record

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/invigil/invigil/sfu"
)

const chromiumPath = "/usr/bin/chromium"

// requireChromium skips the test when Chromium is missing, or fails it
// in CI (CI=true), where scripts/install-test-deps.sh installs it.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("%s not found (%v); scripts/install-test-deps.sh installs it", chromiumPath, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// playback is what the page's <video> reports.
type playback struct {
	Time     float64 `json:"time"`
	Duration float64 `json:"duration"`
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	Frames   int     `json:"frames"`
	Audio    int     `json:"audio"` // bytes of audio decoded: ~4 kB a second at 32 kb/s
	Error    string  `json:"error"`
	Ready    int     `json:"ready"`
}

const playbackJS = `(() => { const v = document.querySelector('video'); return {
	time: v.currentTime, duration: isFinite(v.duration) ? v.duration : -1,
	width: v.videoWidth, height: v.videoHeight,
	frames: v.getVideoPlaybackQuality().totalVideoFrames,
	audio: v.webkitAudioDecodedByteCount || 0,
	error: v.error ? v.error.code + ': ' + v.error.message : '', ready: v.readyState}; })()`

// TestMP4PlaysInChromium: the fragmented MP4 of an H.264 student, served
// by a plain HTTP server to a plain <video>, plays in headless Chromium:
// 640×360, the recording's duration, currentTime advancing with frames
// and Opus decoded; and it seeks (the review page seeks to events).
func TestMP4PlaysInChromium(t *testing.T) {
	requireChromium(t)
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	cam := newSource(sfu.KindVideo, "video/H264", "camera")
	mic := newSource(sfu.KindAudio, "audio/opus", "microphone")
	r.Record("exam-c", "jo", mic)
	r.Record("exam-c", "jo", cam)
	feedH264(t, cam, mic, 10, 0)
	close(cam.done)
	close(mic.done)
	m := waitManifest(t, r, ev, "exam-c")
	name := m.Files[0].Name

	mux := http.NewServeMux()
	mux.Handle("GET /rec/", http.StripPrefix("/rec/", http.FileServer(http.Dir(m.Dir))))
	mux.HandleFunc("GET /play.html", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><video src="/rec/%s" muted playsinline autoplay></video>`, name)
	})
	srv := httptest.NewServer(mux) // 127.0.0.1, an ephemeral port
	defer srv.Close()

	hard, cancelHard := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelHard()
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	stop := context.AfterFunc(hard, cancel)
	defer stop()
	// The first Run starts the browser: no timeout on its context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/play.html")); err != nil {
		t.Fatal(err)
	}
	var p playback
	poll := func(what string, ok func(playback) bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var err error
			if p, err = chromedp.Run(ctx, chromedp.Evaluate[playback](playbackJS)); err != nil {
				t.Fatal(err)
			}
			if p.Error != "" {
				t.Fatalf("the video failed: %s (%+v)", p.Error, p)
			}
			if ok(p) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 20 s: %+v", what, p)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	poll("playing past 2 s", func(p playback) bool { return p.Time > 2 })
	if p.Width != 640 || p.Height != 360 || p.Duration < 9 || p.Duration > 11 || p.Frames < 30 || p.Audio < 8000 {
		t.Errorf("playing: %+v; want 640×360, ~10 s, frames shown and audio decoded", p)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector('video').currentTime = 7`)); err != nil {
		t.Fatal(err)
	}
	poll("playing on after a seek to 7 s", func(p playback) bool { return p.Time > 7.5 })
	t.Logf("chromium played %s: %+v", strings.TrimSuffix(filepath.Base(name), ".mp4"), p)
}
