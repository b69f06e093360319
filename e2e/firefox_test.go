package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// firefoxPath is where scripts/install-test-deps.sh puts Firefox ESR.
	firefoxPath = "/usr/bin/firefox-esr"
	// firefoxDriver is the Node script that drives Firefox (puppeteer-core
	// over WebDriver BiDi), relative to this package's directory, where
	// `go test` runs; its packages are in node/node_modules.
	firefoxDriver = "node/firefox.mjs"
	// firefoxStartTimeout bounds Node and Firefox starting with a fresh
	// profile: several seconds on an idle machine, more on a shared one.
	firefoxStartTimeout = 60 * time.Second
	// firefoxOpenTimeout bounds opening a tab and loading its page.
	firefoxOpenTimeout = 30 * time.Second
	// firefoxStopTimeout is how long the script gets to close Firefox.
	firefoxStopTimeout = 15 * time.Second
	// firefoxReplyMargin is added to a request's own timeout (which the
	// script enforces) for the round trip through Node and BiDi.
	firefoxReplyMargin = 5 * time.Second
)

// requireFirefox returns the driver script's path, or skips the test when
// Firefox ESR, node or e2e/node's npm packages are missing (fails instead
// when CI=true, where scripts/install-test-deps.sh must have run).
func requireFirefox(t *testing.T) string {
	t.Helper()
	var missing []string
	if _, err := os.Stat(firefoxPath); err != nil {
		missing = append(missing, fmt.Sprintf("%s (%v)", firefoxPath, err))
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, fmt.Sprintf("node (%v)", err))
	}
	puppeteer := filepath.Join(filepath.Dir(firefoxDriver), "node_modules", "puppeteer-core", "package.json")
	if _, err := os.Stat(puppeteer); err != nil {
		missing = append(missing, fmt.Sprintf("e2e/%s (%v)", puppeteer, err))
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("%s not found; run scripts/install-test-deps.sh as root", strings.Join(missing, ", "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	driver, err := filepath.Abs(firefoxDriver)
	if err != nil {
		t.Fatal(err)
	}
	return driver
}

// firefox is one headless Firefox ESR driven by e2e/node/firefox.mjs, a
// Node process speaking JSON lines on its stdin and stdout (the protocol
// is described at the top of the script). The test talks to the script;
// the script talks WebDriver BiDi to Firefox.
type firefox struct {
	cmd      *exec.Cmd
	pid      int    // Firefox's own PID, from the script's ready line
	profile  string // the profile directory, in t.TempDir()
	output   *lineLog
	replies  chan ffReply  // the script's stdout, one decoded line each
	stopped  chan struct{} // closed by kill (once), ends the stdout reader
	stopOnce sync.Once
	exited   chan struct{} // closed once the script has exited
	pages    []*firefoxPage

	// mu guards stdin and nextID: the script answers one request at a time.
	mu     sync.Mutex
	stdin  io.WriteCloser
	nextID int
}

// ffReply is one line the script writes: a reply to request ID, or the
// ready line.
type ffReply struct {
	ID     int             `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *string         `json:"error"`
	Ready  *struct {
		PID     int    `json:"pid"`
		Version string `json:"version"`
	} `json:"ready"`
}

// startFirefox starts the driver script with a fresh profile and waits for
// Firefox to be ready. mediaOrigins get a remembered camera and microphone
// permission (see the script). A cleanup stops Node and Firefox by PID,
// after saving screenshots and logging their output when the test failed;
// hardCtx ending kills them too.
func startFirefox(t *testing.T, hardCtx context.Context, driver string, mediaOrigins ...string) *firefox {
	t.Helper()
	f := &firefox{
		profile: t.TempDir(),
		output:  newLineLog(400),
		replies: make(chan ffReply, 16),
		stopped: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	f.output.skip = firefoxNoise
	args := []string{driver, "--executable", firefoxPath, "--profile", f.profile}
	for _, o := range mediaOrigins {
		args = append(args, "--media-origin", o)
	}
	f.cmd = exec.Command("node", args...)
	f.cmd.Env = append(os.Environ(), "PUPPETEER_SKIP_DOWNLOAD=1")
	f.cmd.Stderr = f.output
	stdout, err := f.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("firefox driver stdout: %v", err)
	}
	if f.stdin, err = f.cmd.StdinPipe(); err != nil {
		t.Fatalf("firefox driver stdin: %v", err)
	}
	if err := f.cmd.Start(); err != nil {
		t.Fatalf("starting node %s: %v", driver, err)
	}
	t.Logf("firefox driver started, node pid %d", f.cmd.Process.Pid)
	go func() {
		// Read stdout to EOF before Wait, as os/exec requires.
		f.readReplies(stdout)
		_ = f.cmd.Wait()
		close(f.exited)
	}()
	stopOnHard := context.AfterFunc(hardCtx, f.kill)
	t.Cleanup(func() {
		if t.Failed() {
			f.saveDiagnostics(t)
		}
		stopOnHard()
		f.stop(t)
		if t.Failed() {
			t.Logf("firefox driver output (last lines):\n%s", f.output)
		}
	})

	timer := time.NewTimer(firefoxStartTimeout)
	defer timer.Stop()
	select {
	case r, ok := <-f.replies:
		if !ok || r.Ready == nil {
			t.Fatalf("firefox driver: no ready line (got %+v); output:\n%s", r, f.output)
		}
		f.pid = r.Ready.PID
		t.Logf("%s ready, pid %d", r.Ready.Version, f.pid)
	case <-timer.C:
		t.Fatalf("firefox not ready within %v; output:\n%s", firefoxStartTimeout, f.output)
	case <-hardCtx.Done():
		t.Fatalf("waiting for firefox: %v", hardCtx.Err())
	}
	return f
}

// readReplies decodes the script's stdout into f.replies until EOF or stop.
func (f *firefox) readReplies(stdout io.Reader) {
	defer close(f.replies)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var r ffReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			f.output.Add(fmt.Sprintf("firefox driver: bad stdout line %.200q: %v", sc.Bytes(), err))
			continue
		}
		select {
		case f.replies <- r:
		case <-f.stopped:
			_, _ = io.Copy(io.Discard, stdout)
			return
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
}

// request sends one request and waits up to timeout for its reply.
func (f *firefox) request(req map[string]any, timeout time.Duration) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := f.nextID
	req["id"] = id
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := f.stdin.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("firefox driver: writing request: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case r, ok := <-f.replies:
			if !ok {
				return nil, errors.New("firefox driver exited")
			}
			if r.ID != id {
				continue // the late reply to a request that timed out
			}
			if r.Error != nil {
				return nil, errors.New(*r.Error)
			}
			return r.Result, nil
		case <-timer.C:
			return nil, fmt.Errorf("firefox driver: no reply to %s within %v", req["op"], timeout)
		}
	}
}

// stop closes the script's stdin, on which it closes Firefox and exits;
// if it has not exited within firefoxStopTimeout it is killed. Firefox's
// leftover processes are then killed by PID.
func (f *firefox) stop(t *testing.T) {
	f.mu.Lock()
	_ = f.stdin.Close()
	f.mu.Unlock()
	timer := time.NewTimer(firefoxStopTimeout)
	defer timer.Stop()
	select {
	case <-f.exited:
	case <-timer.C:
		t.Logf("firefox driver (pid %d) did not exit within %v of stdin closing; killing it", f.cmd.Process.Pid, firefoxStopTimeout)
	}
	f.kill()
	for _, pid := range f.processes() {
		t.Logf("killing leftover firefox process %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for deadline := time.Now().Add(time.Second); len(f.processes()) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the script by PID unless it has exited, and waits for it.
// Firefox then notices its BiDi connection gone; stop reaps what remains.
func (f *firefox) kill() {
	select {
	case <-f.exited:
		return
	default:
	}
	f.stopOnce.Do(func() { close(f.stopped) })
	_ = f.cmd.Process.Kill()
	<-f.exited
}

// processes lists the live processes of this test's Firefox: its main
// process, the processes of its process group (puppeteer starts Firefox as
// a group leader; its content processes join the group) and the crash
// helper that names its PID. Nothing else has that PID or group.
func (f *firefox) processes() []int {
	if f.pid <= 0 {
		return nil
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || isZombie(stat) {
			continue
		}
		mine := pid == f.pid || processGroup(stat) == f.pid
		if !mine {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			args := strings.Split(string(cmdline), "\x00")
			mine = len(args) > 1 && filepath.Base(args[0]) == "crashhelper" && args[1] == strconv.Itoa(f.pid)
		}
		if mine {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processGroup returns the pgrp field of a /proc/<pid>/stat line, or -1.
func processGroup(stat []byte) int {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	// After the command: state, ppid, pgrp.
	fields := strings.Fields(s[i+1:])
	if len(fields) < 3 {
		return -1
	}
	pgrp, err := strconv.Atoi(fields[2])
	if err != nil {
		return -1
	}
	return pgrp
}

// firefoxNoise reports the harmless lines headless Firefox prints in a
// container and while closing.
func firefoxNoise(line string) bool {
	return strings.Contains(line, "PrivateBrowsingUtils.sys.mjs") ||
		strings.Contains(line, "JSWindowActorChild cannot send at the moment") ||
		strings.Contains(line, "No such JSProcessActor 'WebDriverDocumentInserted'")
}

// saveDiagnostics writes a PNG screenshot of each page into the artifacts
// directory; the pages' consoles are in the driver's output.
func (f *firefox) saveDiagnostics(t *testing.T) {
	t.Helper()
	dir := artifactsDir(t)
	if dir == "" {
		return
	}
	for _, p := range f.pages {
		path := filepath.Join(dir, "firefox-"+sanitize(p.name)+".png")
		if _, err := f.request(map[string]any{"op": "screenshot", "page": p.name, "path": path}, evalTimeout+firefoxReplyMargin); err != nil {
			t.Logf("firefox page %s: screenshot failed: %v", p.name, err)
			continue
		}
		t.Logf("firefox page %s: screenshot %s", p.name, path)
	}
}

// firefoxPage is one tab of a test's Firefox.
type firefoxPage struct {
	ff   *firefox
	name string
}

var _ webPage = (*firefoxPage)(nil)

// open opens url in a new tab named name and waits for it to load.
func (f *firefox) open(t *testing.T, name, url string) *firefoxPage {
	t.Helper()
	if _, err := f.request(map[string]any{"op": "open", "page": name, "url": url}, firefoxOpenTimeout); err != nil {
		t.Fatalf("firefox page %s: opening %s: %v", name, redactToken(url), err)
	}
	p := &firefoxPage{ff: f, name: name}
	f.pages = append(f.pages, p)
	return p
}

func (p *firefoxPage) evalRaw(script string, timeout time.Duration) ([]byte, error) {
	raw, err := p.ff.request(map[string]any{"op": "eval", "page": p.name, "script": script, "timeoutMs": timeout.Milliseconds()}, timeout+firefoxReplyMargin)
	if err != nil {
		return nil, fmt.Errorf("firefox page %s: %w", p.name, err)
	}
	return raw, nil
}

func (p *firefoxPage) label() string { return "firefox " + p.name }
