// Package testpeer starts coturn's turnutils_peer, a UDP echo peer, for
// tests that relay through TURN to it.
package testpeer

import (
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
)

// echoTimeout bounds how long the peer may take to answer its first ping.
const echoTimeout = 5 * time.Second

// Start runs bin (turnutils_peer) on a free 127.0.0.1 UDP port in a
// temporary directory, waits until it echoes, and kills it by PID when
// the test ends. It returns the port.
func Start(t testing.TB, bin string) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	cmd := exec.Command(bin, "-L", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Dir = t.TempDir()
	var out logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("turnutils_peer output:\n%s", out.String())
		}
	})
	c, err := net.Dial("udp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	deadline := time.Now().Add(echoTimeout)
	for time.Now().Before(deadline) {
		_, _ = c.Write([]byte("ping"))
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && string(buf[:n]) == "ping" {
			return port
		}
	}
	t.Fatalf("turnutils_peer on port %d did not echo within %s", port, echoTimeout)
	return 0
}
