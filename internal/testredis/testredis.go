// Package testredis starts a real redis-server for a test: on 127.0.0.1,
// without persistence unless asked, stopped by PID when the test ends.
// scripts/install-test-deps.sh installs redis-server.
package testredis

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// startTimeout bounds how long redis-server may take to listen.
const startTimeout = 5 * time.Second

// Server is a redis-server the test started.
type Server struct {
	Port int
	cmd  *exec.Cmd
}

// Start starts redis-server on 127.0.0.1:port (a free port when port is
// 0) and waits until it accepts connections. extra are more
// redis-server arguments (e.g. "--appendonly", "yes").
func Start(t testing.TB, port int, extra ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server missing: scripts/install-test-deps.sh installs it")
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no"}, extra...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Port: port, cmd: cmd}
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.Dial("tcp", s.Addr())
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %d did not start within %s", port, startTimeout)
		}
		time.Sleep(20 * time.Millisecond) // polling a port that is not open yet: nothing to wait on
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Stop kills the server (a crash, as far as Redis can tell) and waits
// for it; it may be called more than once.
func (s *Server) Stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}
