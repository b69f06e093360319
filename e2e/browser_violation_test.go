package e2e

import (
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
)

// TestBrowserViolationReachesProctor: a student page that goes hidden
// (its window minimized through CDP: a real visibilitychange from the
// browser's page lifecycle) reports a tab_hidden violation through the SDK; the proctor page marks
// that student's tile (data-badges) and lists it in its timeline. Then the
// proctor messages the student from the tile's button: the student page
// shows it, and acknowledging it puts message_ack in the proctor's
// timeline.
func TestBrowserViolationReachesProctor(t *testing.T) {
	sc := newScene(t)
	proctor := sc.open(t, "proctor", "pat", "Pat")
	student := sc.open(t, "student", "alice", "Alice")

	waitFor := func(what, js string) string {
		t.Helper()
		deadline := time.Now().Add(mediaTimeout)
		for {
			got, err := evaluate[string](proctor, js)
			if err != nil {
				t.Fatal(err)
			}
			if got != "" {
				return got
			}
			if time.Now().After(deadline) {
				saveDiagnostics(t, []*tab{proctor, student})
				t.Fatalf("%s: not within %v", what, mediaTimeout)
			}
			time.Sleep(pollInterval)
		}
	}
	waitFor("alice's tile", `document.querySelector('[data-identity="alice"]') ? 'yes' : ''`)
	// The page watches for violations once it publishes.
	deadline := time.Now().Add(mediaTimeout)
	for {
		st, err := evaluate[string](student, `window.invigilClient?.localStream ? 'ok' : ''`)
		if err != nil {
			t.Fatal(err)
		}
		if st != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the student page did not publish")
		}
		time.Sleep(pollInterval)
	}
	time.Sleep(time.Second) // publishCamera resolves, then the watch starts
	setWindowState(t, student, cdpbrowser.WindowStateMinimized)
	// Minimizing blurs the window, then hides the page: both are reported.
	badges := waitFor("a tab_hidden badge on alice's tile", `(() => {
  const b = document.querySelector('[data-identity="alice"]')?.dataset.badges ?? '';
  return b.includes('violation:tab_hidden') ? b : '';
})()`)
	if !strings.Contains(badges, "violation:window_blur") {
		t.Errorf("alice's tile badges %q, want violation:window_blur beside tab_hidden", badges)
	}
	line := waitFor("the timeline line", `[...document.querySelectorAll('#timeline li[data-kind="violation"]')].map((li) => li.textContent).filter((s) => s.includes('tab_hidden')).join('\n')`)
	if !strings.Contains(line, "alice") || !strings.Contains(line, "tab_hidden") {
		t.Errorf("timeline %q", line)
	}

	if _, err := evaluate[bool](proctor, `(() => {
  window.prompt = () => 'Please face the camera.';
  document.querySelector('[data-identity="alice"] [data-action="message"]').click();
  return true;
})()`); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(mediaTimeout)
	for {
		text, err := evaluate[string](student, `document.querySelector('.proctor-message p')?.textContent ?? ''`)
		if err != nil {
			t.Fatal(err)
		}
		if text == "Please face the camera." {
			break
		}
		if time.Now().After(deadline) {
			saveDiagnostics(t, []*tab{proctor, student})
			t.Fatalf("the student page shows no proctor message (got %q)", text)
		}
		time.Sleep(pollInterval)
	}
	if _, err := evaluate[bool](student, `(() => { document.querySelector('.proctor-message button').click(); return true; })()`); err != nil {
		t.Fatal(err)
	}
	// Back to the exam: tab_visible, with how long it was away.
	setWindowState(t, student, cdpbrowser.WindowStateNormal)
	back := waitFor("tab_visible in the timeline", `[...document.querySelectorAll('#timeline li[data-kind="violation"]')].map((li) => li.textContent).filter((s) => s.includes('tab_visible')).join('\n')`)
	if !strings.Contains(back, "alice") {
		t.Errorf("tab_visible line %q", back)
	}
	waitFor("message_ack in the timeline", `document.querySelector('#timeline li[data-kind="message_ack"]')?.textContent ?? ''`)
}
