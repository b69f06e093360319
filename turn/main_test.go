package turn

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/internal/pionlog"
	"github.com/invigil/invigil/internal/testpeer"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: every server is
// closed, and Close waits for pion's goroutines and the relays.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "s3cret-for-tests"

// testServer is a Server on 127.0.0.1 ephemeral ports: UDP and TCP on one
// port number, TLS on another when requested.
type testServer struct {
	*Server
	port    int // UDP and TCP
	tlsPort int // 0 without TLS
	logs    *logbuf.Buffer
}

func (ts *testServer) udpAddr() string { return "127.0.0.1:" + strconv.Itoa(ts.port) }
func (ts *testServer) tlsAddr() string { return "127.0.0.1:" + strconv.Itoa(ts.tlsPort) }

// teeWriter writes to the test log and to a buffer.
type teeWriter struct {
	t   *testing.T
	buf *logbuf.Buffer
}

func (w teeWriter) Write(p []byte) (int, error) {
	_, _ = w.buf.Write(p)
	return w.t.Output().Write(p)
}

// listenUDPAndTCP binds UDP and TCP on the same 127.0.0.1 port number, as
// --turn-udp-port does, retrying when the TCP port is taken.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener, int) {
	t.Helper()
	var lc net.ListenConfig
	for range 20 {
		pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			return pc, ln, port
		}
		_ = pc.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil, 0
}

// newTestServer starts a Server with test defaults, changed by mod, and
// closes it when the test ends.
func newTestServer(t *testing.T, mod func(*Config)) *testServer {
	t.Helper()
	udp, tcp, port := listenUDPAndTCP(t)
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewTextHandler(teeWriter{t: t, buf: logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{
		UDP:      udp,
		TCP:      tcp,
		Secret:   []byte(testSecret),
		RelayIP:  net.IPv4(127, 0, 0, 1),
		Logger:   log,
		PionLogs: pionlog.New(log, pionlog.Relay, time.Second),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ts := &testServer{Server: s, port: port, logs: logs}
	if cfg.TLS != nil {
		ts.tlsPort = cfg.TLS.Addr().(*net.TCPAddr).Port
	}
	return ts
}

// requireTool returns the path of an external program, or skips the test
// when it is missing (fails in CI, where scripts/install-test-deps.sh
// installs it).
func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (Debian package %s; scripts/install-test-deps.sh installs it)", name, pkg)
		}
		t.Skipf("%s not found (Debian package %s); run scripts/install-test-deps.sh", name, pkg)
	}
	return path
}

// startPeer starts coturn's turnutils_peer, a UDP echo peer, on a
// 127.0.0.1 port and waits until it echoes.
func startPeer(t *testing.T) int {
	t.Helper()
	return testpeer.Start(t, requireTool(t, "turnutils_peer", "coturn"))
}

// runTool runs an external program to completion in a temporary
// directory, killing it by PID after timeout, and returns its combined
// output and exit error.
func runTool(t *testing.T, timeout time.Duration, bin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	var out logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), errors.New("killed after " + timeout.String())
	}
}

// lines returns the lines of s containing substr, for failure messages.
func lines(s, substr string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if strings.Contains(l, substr) {
			b.WriteString(l)
		}
	}
	return b.String()
}
