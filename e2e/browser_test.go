package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

const (
	// chromiumPath is where scripts/install-test-deps.sh puts Chromium.
	chromiumPath = "/usr/bin/chromium"
	// navigateTimeout bounds loading one page.
	navigateTimeout = 15 * time.Second
	// evalTimeout bounds one script evaluation in a tab.
	evalTimeout = 5 * time.Second
	// browserExitTimeout is how long Chromium and its children get to exit.
	browserExitTimeout = 5 * time.Second
)

// requireChromium returns chromiumPath, or skips the test when it is missing
// (fails instead when CI=true, where scripts/install-test-deps.sh must have run).
func requireChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("%s not found (%v); run scripts/install-test-deps.sh as root", chromiumPath, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return chromiumPath
}

// browser is one headless Chromium process shared by a test's tabs.
type browser struct {
	ctx     context.Context // the first tab's context; tabs derive from it
	pid     int
	dataDir string
	output  *lineLog // Chromium's stdout/stderr and chromedp's own log
	tabs    []*tab   // opened by openTab, closed by the browser's cleanup
}

// startBrowser starts Chromium with the project's flags (fake camera and
// microphone, permission prompts auto-accepted) and a fresh profile. The
// browser also stops when hardCtx ends, so nothing outlives the hard timeout.
func startBrowser(t *testing.T, hardCtx context.Context, execPath string) *browser {
	t.Helper()
	b := &browser{dataDir: t.TempDir(), output: newLineLog(200)}
	b.output.skip = chromiumNoise
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.UserDataDir(b.dataDir),
		chromedp.CombinedOutput(b.output),
	)
	logf := func(format string, args ...any) { b.output.Add("chromedp: " + fmt.Sprintf(format, args...)) }
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	b.ctx = ctx
	stopOnHard := context.AfterFunc(hardCtx, cancel)
	t.Cleanup(func() {
		if t.Failed() {
			saveDiagnostics(t, b.tabs)
		}
		for _, tb := range b.tabs {
			tb.cancel()
			<-tb.done
		}
		stopOnHard()
		cancel()
		cancelAlloc()
		b.reap(t)
		if t.Failed() {
			t.Logf("chromium output (last lines):\n%s", b.output)
		}
	})

	// The first Run starts the browser; it must have no timeout, as the
	// browser lives as long as this call's context (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", execPath, err, b.output)
	}
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	t.Logf("chromium started, pid %d", b.pid)
	return b
}

// reap makes sure Chromium and every child using its profile are gone,
// killing leftovers by PID, so the profile directory can be removed.
func (b *browser) reap(t *testing.T) {
	deadline := time.Now().Add(browserExitTimeout)
	for len(b.processes()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range b.processes() {
		t.Logf("killing leftover chromium process %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(time.Second); len(b.processes()) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// processes lists the live PIDs whose command line names this browser's
// profile directory, the main process first: exactly the processes this test
// started, and nothing else.
func (b *browser) processes() []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	needle := "--user-data-dir=" + b.dataDir
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), needle) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && isZombie(stat) {
			continue
		}
		if pid == b.pid {
			pids = append([]int{pid}, pids...)
		} else {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isZombie reports whether a /proc/<pid>/stat line has state Z (exited,
// waiting to be reaped by its parent).
func isZombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// chromiumNoise reports the harmless lines Chromium prints in a container
// (no D-Bus, no sound card, the launcher script's shell warning).
func chromiumNoise(line string) bool {
	return strings.Contains(line, "dbus/") ||
		strings.HasPrefix(line, "ALSA lib ") ||
		strings.Contains(line, "alsa_util.cc") ||
		strings.Contains(line, "unexpected operator")
}

// tab is one page in the shared browser.
type tab struct {
	name    string
	ctx     context.Context
	cancel  context.CancelFunc
	console *lineLog
	done    chan struct{} // closed when the console reader ends
}

// openTab opens url in a new tab (own window, so it renders as if visible)
// and collects its console. The browser's cleanup screenshots (on failure)
// and closes every tab.
func (b *browser) openTab(t *testing.T, name, url string) *tab {
	t.Helper()
	return b.openTabWithInit(t, name, url, "")
}

// openTabWithInit is openTab with a script that runs in every document of
// the tab before the page's own scripts (none when script is empty).
func (b *browser) openTabWithInit(t *testing.T, name, url, script string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb := &tab{name: name, ctx: ctx, cancel: cancel, console: newLineLog(300), done: make(chan struct{})}
	// The tab's first Run attaches it and lives as long as its context: no timeout.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		t.Fatalf("opening tab %s: %v", name, err)
	}
	b.tabs = append(b.tabs, tb)
	messages := chromedp.Console(ctx) // subscribes now, before the page loads
	go func() {
		defer close(tb.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			where := ""
			if m.URL != "" {
				where = fmt.Sprintf(" (%s:%d)", filepath.Base(m.URL), m.Line+1)
			}
			tb.console.Add(m.Time.Format("15:04:05.000") + " " + m.String() + where)
		}
	}()
	if script != "" {
		addInit := chromedp.Action[chromedp.Void](func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script})
			return chromedp.Void{}, err
		})
		if err := run(ctx, navigateTimeout, addInit); err != nil {
			t.Fatalf("tab %s: init script: %v", name, err)
		}
	}
	if err := run(ctx, navigateTimeout, chromedp.Navigate(url)); err != nil {
		t.Fatalf("tab %s: navigating to %s: %v", name, redactToken(url), err)
	}
	return tb
}

// setWindowState minimizes (or restores, WindowStateNormal) the tab's own
// window through CDP, as a student switching away from the exam does: the
// page becomes hidden and the browser fires a real visibilitychange.
func setWindowState(t *testing.T, tb *tab, state cdpbrowser.WindowState) {
	t.Helper()
	act := chromedp.Action[chromedp.Void](func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
		win, err := cdp.Call(ctx, target, cdpbrowser.GetWindowForTarget, cdpbrowser.GetWindowForTargetParams{})
		if err != nil {
			return chromedp.Void{}, err
		}
		_, err = cdp.Call(ctx, target, cdpbrowser.SetWindowBounds, cdpbrowser.SetWindowBoundsParams{WindowID: win.WindowID, Bounds: &cdpbrowser.Bounds{WindowState: state}})
		return chromedp.Void{}, err
	})
	if err := run(tb.ctx, navigateTimeout, act); err != nil {
		t.Fatalf("tab %s: window state %s: %v", tb.name, state, err)
	}
}

// run runs one action with a timeout on a tab that has already run once.
func run(ctx context.Context, timeout time.Duration, a chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := chromedp.Run(ctx, a)
	return err
}

// evaluate evaluates a script (awaiting its promise) in the tab and decodes
// its JSON value into T.
func evaluate[T any](tb *tab, script string) (T, error) {
	return evaluateFor[T](tb, script, evalTimeout)
}

// evaluateFor is evaluate with its own timeout, for scripts that wait.
func evaluateFor[T any](tb *tab, script string, timeout time.Duration) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](script, chromedp.EvalAwaitPromise))
	if err != nil {
		return v, fmt.Errorf("tab %s: %w", tb.name, err)
	}
	return v, nil
}

// webPage is a document a test evaluates scripts in: a Chromium tab (chromedp)
// or a Firefox page (firefoxPage), so one scenario can run on either.
type webPage interface {
	// evalRaw evaluates script (awaiting its promise) and returns the JSON
	// of its value.
	evalRaw(script string, timeout time.Duration) ([]byte, error)
	// label names the page in failure messages.
	label() string
}

var _ webPage = (*tab)(nil)

func (tb *tab) evalRaw(script string, timeout time.Duration) ([]byte, error) {
	return evaluateFor[[]byte](tb, script, timeout)
}

func (tb *tab) label() string { return tb.name }

// evalPage evaluates script in p and decodes its JSON value into T.
func evalPage[T any](p webPage, script string, timeout time.Duration) (T, error) {
	var v T
	raw, err := p.evalRaw(script, timeout)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("page %s: decoding %.200q: %w", p.label(), raw, err)
	}
	return v, nil
}

// saveDiagnostics writes a PNG screenshot of each tab into a directory that
// outlives the test ($INVIGIL_E2E_ARTIFACTS, else a new temporary directory)
// and logs its path and each tab's console.
func saveDiagnostics(t *testing.T, tabs []*tab) {
	t.Helper()
	dir := artifactsDir(t)
	for _, tb := range tabs {
		if dir != "" {
			ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
			png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			cancel()
			path := filepath.Join(dir, sanitize(tb.name)+".png")
			switch {
			case err != nil:
				t.Logf("tab %s: screenshot failed: %v", tb.name, err)
			case os.WriteFile(path, png, 0o644) != nil:
				t.Logf("tab %s: writing %s failed", tb.name, path)
			default:
				t.Logf("tab %s: screenshot %s", tb.name, path)
			}
		}
		t.Logf("tab %s console:\n%s", tb.name, tb.console)
	}
}

// artifactsDir returns the directory failure screenshots go to, one that
// outlives the test ($INVIGIL_E2E_ARTIFACTS, else a new temporary
// directory), or "" when it cannot be made.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("INVIGIL_E2E_ARTIFACTS")
	var err error
	if dir == "" {
		dir, err = os.MkdirTemp("", "invigil-e2e-"+sanitize(t.Name())+"-")
	} else {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Logf("no screenshots: %v", err)
		return ""
	}
	return dir
}

// sanitize makes s usable as a file name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == os.PathSeparator {
			return '_'
		}
		return r
	}, s)
}

// redactToken hides the token in a page URL's fragment for logs.
func redactToken(url string) string {
	if i := strings.Index(url, "#token="); i >= 0 {
		return url[:i] + "#token=…"
	}
	return url
}

// waitFor polls cond every pollInterval until it holds. Past mediaTimeout
// it saves the tabs' screenshots and consoles and fails with what cond
// said last.
func waitFor(t *testing.T, tabs []*tab, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(mediaTimeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			saveDiagnostics(t, tabs)
			t.Fatalf("%s: not within %v (last: %s)", what, mediaTimeout, last)
		}
		time.Sleep(pollInterval)
	}
}

// mustEval is evaluate failing the test on an error.
func mustEval[T any](t *testing.T, tb *tab, script string) T {
	t.Helper()
	v, err := evaluate[T](tb, script)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// evalJSON evaluates a script that returns a JSON string, decodes it into
// v, and returns the raw JSON (for failure messages).
func evalJSON(t *testing.T, tb *tab, script string, v any) string {
	t.Helper()
	raw := mustEval[string](t, tb, script)
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		t.Fatalf("tab %s: %q: %v", tb.name, raw, err)
	}
	return raw
}

// scene is a browser test's stage: a real `invigil serve` (with extra
// flags) and a headless Chromium, both stopped when the test ends or the
// hard timeout passes, with a leak check on the test.
type scene struct {
	ctx context.Context // ends at hardTimeout
	srv *server
	br  *browser
}

func newScene(t *testing.T, serverArgs ...string) *scene {
	t.Helper()
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)
	srv := startServer(t, ctx, bin, apiSecret, serverArgs...)
	return &scene{ctx: ctx, srv: srv, br: startBrowser(t, ctx, chromium)}
}

// open opens the page of role ("student" or "proctor") for identity in
// the test room, with a token minted for them, in a tab named identity.
func (s *scene) open(t *testing.T, role, identity, name string) *tab {
	t.Helper()
	return s.br.openTab(t, identity, s.srv.url("/"+role+"#token="+s.srv.token(t, s.ctx, room, identity, role, name)))
}
