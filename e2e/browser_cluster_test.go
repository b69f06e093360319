package e2e

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// startRedis runs redis-server on a free loopback port, without
// persistence, stopped by PID at cleanup.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server missing: scripts/install-test-deps.sh installs it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return "redis://127.0.0.1:" + port
		}
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// decodedFrom returns how many video frames the proctor page decoded.
const proctorDecodedJS = `(async () => {
  const pc = window.invigilClient?.peerConnection; let n = 0;
  if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0; });
  return n;
})()`

// TestBrowserClusterRedirectAndRejoin: two nodes share Redis. The proctor
// page, opened on node A, opens the room there; the student page, opened
// on node B, is redirected by B to A, and the proctor decodes its video.
// Then A is SIGKILLed: the student page rejoins through the address it was
// opened with (B, standing in for the public URL), the room moves to B,
// and a proctor opening the room on B decodes the student again.
func TestBrowserClusterRedirectAndRejoin(t *testing.T) {
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)

	redisURL := startRedis(t)
	a := startServer(t, ctx, bin, apiSecret, "--redis-url", redisURL, "--node-id", "a", "--allowed-origins", "127.0.0.1:*")
	b := startServer(t, ctx, bin, apiSecret, "--redis-url", redisURL, "--node-id", "b", "--allowed-origins", "127.0.0.1:*")
	proctorToken := a.token(t, ctx, room, "pat", "proctor", "Pat")
	studentToken := a.token(t, ctx, room, "alice", "student", "Alice")

	br := startBrowser(t, ctx, chromium)
	decoded := func(tb *tab) int {
		n, err := evaluate[int](tb, proctorDecodedJS)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitDecoded := func(proctor *tab, student *tab, what string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for decoded(proctor) < 20 {
			if time.Now().After(deadline) {
				saveDiagnostics(t, []*tab{proctor, student})
				t.Fatalf("%s: the proctor decoded no video of the student within %v", what, timeout)
			}
			time.Sleep(pollInterval)
		}
	}
	proctor := br.openTab(t, "proctor-a", a.url("/proctor#token="+proctorToken))
	deadline := time.Now().Add(mediaTimeout)
	for {
		st, err := evaluate[string](proctor, `window.invigilClient?.state ?? ''`)
		if err != nil {
			t.Fatal(err)
		}
		if st == "joined" {
			break
		}
		if time.Now().After(deadline) {
			saveDiagnostics(t, []*tab{proctor})
			t.Fatalf("the proctor did not join on node a (state %q)", st)
		}
		time.Sleep(pollInterval)
	}
	student := br.openTab(t, "student", b.url("/student#token="+studentToken))
	waitDecoded(proctor, student, "student opened on node b, room on node a", mediaTimeout)

	a.kill() // SIGKILL: the room's node is gone
	killed := time.Now()
	deadline = killed.Add(30 * time.Second)
	for {
		st, err := evaluate[string](student, `(async () => {
  const c = window.invigilClient; if (!c || c.state !== 'joined' || !c.peerConnection) return '';
  let n = 0; (await c.peerConnection.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') n += s.framesEncoded ?? 0; });
  return n > 0 ? c.url : '';
})()`)
		if err != nil {
			t.Fatal(err)
		}
		if st != "" {
			t.Logf("student rejoined through %s and publishes, %v after the kill", st, time.Since(killed).Round(100*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			saveDiagnostics(t, []*tab{student})
			t.Fatal("the student page did not rejoin within 30 s of its node's loss")
		}
		time.Sleep(pollInterval)
	}
	proctorB := br.openTab(t, "proctor-b", b.url("/proctor#token="+b.token(t, ctx, room, "pat", "proctor", "Pat")))
	waitDecoded(proctorB, student, "after the loss of node a", mediaTimeout)
}
