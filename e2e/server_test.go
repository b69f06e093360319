package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// serverStartTimeout bounds the wait for the "invigil serving" log line.
	serverStartTimeout = 15 * time.Second
	// serverStopTimeout is how long the server may take to exit after SIGTERM.
	serverStopTimeout = 10 * time.Second
)

// servingLine matches the slog text line the server writes once it listens,
// e.g. `time=… level=INFO msg="invigil serving" http_addr=127.0.0.1:40123 …`.
var (
	servingMsg   = `msg="invigil serving"`
	httpAddrAttr = regexp.MustCompile(`\bhttp_addr="?([^\s"]+)"?`)
)

// server is one `invigil serve` subprocess.
type server struct {
	bin    string
	secret string
	cmd    *exec.Cmd
	addr   string   // host:port of the HTTP listener
	logs   *lineLog // stderr and stdout, last lines
	exited chan struct{}
	// waitErr is cmd.Wait's result, valid once exited is closed.
	waitErr error
}

// startServer starts `invigil serve` on 127.0.0.1 with ephemeral ports and a
// fresh data directory, and returns once it logs its HTTP address. A cleanup
// kills it by PID if the test did not stop it.
// extra flags follow the defaults.
func startServer(t *testing.T, ctx context.Context, bin, secret string, extra ...string) *server {
	t.Helper()
	s := &server{bin: bin, secret: secret, logs: newLineLog(400), exited: make(chan struct{})}
	args := []string{"serve",
		"--api-secret", secret,
		"--http-addr", "127.0.0.1:0",
		"--rtc-udp-port", "0",
		"--rtc-tcp-port", "0",
		"--node-ip", "127.0.0.1",
		"--data-dir", t.TempDir(),
		"--turn-udp-port", "0", // a test that wants TURN passes its own port
	}
	s.cmd = exec.Command(bin, append(args, extra...)...)
	s.cmd.Stdout = s.logs
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatalf("server stderr pipe: %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s serve: %v", bin, err)
	}
	t.Logf("invigil serve started, pid %d", s.cmd.Process.Pid)

	addrCh := make(chan string, 1)
	go func() {
		// Read stderr to EOF before Wait, as os/exec requires.
		scanStderr(stderr, s.logs, addrCh)
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			t.Logf("server log (last lines):\n%s", s.logs)
		}
	})

	timer := time.NewTimer(serverStartTimeout)
	defer timer.Stop()
	select {
	case s.addr = <-addrCh:
		t.Logf("invigil serving on %s", s.addr)
		return s
	case <-s.exited:
		t.Fatalf("invigil serve exited before serving (%v); log:\n%s", s.waitErr, s.logs)
	case <-timer.C:
		t.Fatalf("invigil serve did not log %s with http_addr within %v; log:\n%s", servingMsg, serverStartTimeout, s.logs)
	case <-ctx.Done():
		t.Fatalf("waiting for invigil serve: %v", ctx.Err())
	}
	return nil
}

// scanStderr copies the server's stderr into logs and sends the first
// http_addr of the serving line on addrCh.
func scanStderr(r io.Reader, logs *lineLog, addrCh chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	found := false
	for sc.Scan() {
		line := sc.Text()
		logs.Add(line)
		if found || !strings.Contains(line, servingMsg) {
			continue
		}
		if m := httpAddrAttr.FindStringSubmatch(line); m != nil {
			found = true
			addrCh <- m[1]
		}
	}
	// Drain on scanner errors (too long a line) so the server never blocks.
	_, _ = io.Copy(logs, r)
}

// url returns the server's base URL joined with path.
func (s *server) url(path string) string {
	return "http://" + s.addr + path
}

// token mints a join token with `invigil token` and returns its last stdout line.
func (s *server) token(t *testing.T, ctx context.Context, room, identity, role, name string) string {
	t.Helper()
	return s.tokenWithSecret(t, ctx, s.secret, room, identity, role, name)
}

// tokenWithSecret is token signed with another secret, to mint bad tokens.
func (s *server) tokenWithSecret(t *testing.T, ctx context.Context, secret, room, identity, role, name string) string {
	t.Helper()
	return s.mint(t, ctx, "--api-secret", secret, "--room", room, "--identity", identity, "--role", role, "--name", name)
}

// mint runs `invigil token` with args (and a 10-minute lifetime) and
// returns the token, its last stdout line.
func (s *server) mint(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	if !slices.Contains(args, "--api-secret") {
		args = append(args, "--api-secret", s.secret)
	}
	cmd := exec.CommandContext(ctx, s.bin, append(append([]string{"token"}, args...), "--ttl", "10m")...)
	identity := args[slices.Index(args, "--identity")+1]
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("invigil token --identity %s: %v\n%s", identity, err, stderr.String())
	}
	lines := strings.Split(strings.TrimRight(string(out), "\r\n"), "\n")
	tok := strings.TrimSpace(lines[len(lines)-1])
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("invigil token --identity %s: last stdout line %q is not a JWT", identity, tok)
	}
	return tok
}

// stop sends SIGTERM to the server's PID and returns its exit code, or an
// error when it does not exit within serverStopTimeout.
func (s *server) stop() (int, error) {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, fmt.Errorf("SIGTERM to pid %d: %w", s.cmd.Process.Pid, err)
	}
	timer := time.NewTimer(serverStopTimeout)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		return -1, fmt.Errorf("pid %d still running %v after SIGTERM", s.cmd.Process.Pid, serverStopTimeout)
	}
	var exitErr *exec.ExitError
	if s.waitErr != nil && !errors.As(s.waitErr, &exitErr) {
		return -1, fmt.Errorf("waiting for pid %d: %w", s.cmd.Process.Pid, s.waitErr)
	}
	return s.cmd.ProcessState.ExitCode(), nil
}

// kill SIGKILLs the server by PID unless it has exited, and waits for it.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}
