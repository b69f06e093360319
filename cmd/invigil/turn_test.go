package main

import (
	"context"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testpeer"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/turn"
)

// TestTURNRelayOnly: a student whose PeerConnection may only use relays
// reaches the SFU through the node's own TURN server with the credentials
// joined handed it, and the proctor gets its media.
func TestTURNRelayOnly(t *testing.T) {
	port := testclient.FreeUDPTCPPort(t)
	srv := startServe(t, "--api-secret", secret, "--turn-udp-port", strconv.Itoa(port))
	if !strings.Contains(srv.stderr.String(), "turn_addr=127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("TURN not listening on %d:\n%s", port, srv.stderr.String())
	}
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/v1/rtc"
	proctor := testclient.Join(t, ws, secret, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, ws, testclient.Options{Secret: secret, Room: "exam-1", Identity: "alice", Role: room.RoleStudent, RelayOnly: true})

	if len(alice.ICEServers) != 1 {
		t.Fatalf("joined handed %d ice servers", len(alice.ICEServers))
	}
	is := alice.ICEServers[0]
	want := turn.URLs("127.0.0.1", port, 0)
	if strings.Join(is.URLs, ",") != strings.Join(want, ",") {
		t.Errorf("ice server URLs %v, want %v", is.URLs, want)
	}
	// REST credentials (coturn's use-auth-secret) valid as long as the
	// join token: testclient tokens live one minute.
	expiry, err := strconv.ParseInt(strings.TrimSuffix(is.Username, ":alice"), 10, 64)
	if err != nil || !strings.HasSuffix(is.Username, ":alice") {
		t.Fatalf("username %q is not the REST scheme's <expiry>:<identity>", is.Username)
	}
	if left := time.Until(time.Unix(expiry, 0)); left < 50*time.Second || left > 70*time.Second {
		t.Errorf("the credentials expire in %v; the token in about a minute", left)
	}
	if user, pass := turn.Credentials([]byte(secret), "alice", time.Unix(expiry, 0)); user != is.Username || pass != is.Credential {
		t.Errorf("credential %q is not base64(HMAC-SHA1(secret, %q)) = %q", is.Credential, user, pass)
	}
	// A client with the same TURN servers and no relay-only policy still
	// reaches the SFU directly: the server's own candidates come first.
	bob := testclient.JoinWith(t, ws, testclient.Options{Secret: secret, Room: "exam-1", Identity: "bob", Role: room.RoleStudent, UseICEServers: true})

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.stderr.String())
		}
	})
	testclient.Eventually(t, 15*time.Second, "relayed media at the proctor", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })
	testclient.Eventually(t, 15*time.Second, "bob's media at the proctor", func() bool { return proctor.PacketsFrom(bob.Me.SID) > 30 })
	fams := parse(t, scrape(t, srv.base))
	if v := value(fams, "invigil_ice_connections_total", map[string]string{"result": "success", "candidate_type": "relay"}); v != 1 {
		t.Errorf("relay connections counted %v, want 1 (alice, not bob)", v)
	}
	if all := value(fams, "invigil_ice_connections_total", map[string]string{"result": "success"}); all != 3 {
		t.Errorf("connections counted %v, want 3: the proctor and bob direct, alice relayed", all)
	}
	if v := value(fams, "invigil_turn_allocations", nil); v < 1 {
		t.Errorf("turn allocations %v", v)
	}
	if v := value(fams, "invigil_turn_relayed_bytes_total", nil); v < 10_000 {
		t.Errorf("relayed bytes %v", v)
	}
}

// TestTURNSecretLength: outside --dev, a short TURN secret is refused
// like a short API secret (TestConfigErrors); with --dev both may be short.
func TestTURNSecretLength(t *testing.T) {
	_, err := parseServe([]string{"--api-secret", secret, "--turn-secret", "short"}, &logbuf.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--turn-secret must be at least 32 bytes") {
		t.Fatalf("got %v", err)
	}
	// --dev is for a laptop: short secrets are accepted there.
	if _, err := parseServe([]string{"--dev", "--api-secret", "short", "--turn-secret", "short too"}, &logbuf.Buffer{}); err != nil {
		t.Errorf("--dev with short secrets: %v", err)
	}
	if _, err := parseServe([]string{"--api-secret", secret, "--turn-allow-peers", "10.0.0.0/33"}, &logbuf.Buffer{}); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
}

// TestTURNPeerFlags runs serve with --turn-allow-peers 127.0.0.0/8 and an
// admin listener on a port the kernel picks: coturn's turnutils_uclient
// relays to a peer on 127.0.0.1 (allowed by the flag), but nothing it
// sends reaches the node's own HTTP or admin port, allow-list or not. A
// UDP socket the test binds on each of those port numbers (TCP listeners;
// UDP's port space is apart) stands in for a service there and must
// receive nothing.
func TestTURNPeerFlags(t *testing.T) {
	t.Parallel() // mostly waiting on turnutils_uclient
	uclient := lookTool(t, "turnutils_uclient")
	peerBin := lookTool(t, "turnutils_peer")
	port := testclient.FreeUDPTCPPort(t)
	srv := startServe(t, "--api-secret", secret, "--turn-udp-port", strconv.Itoa(port),
		"--turn-allow-peers", "127.0.0.0/8", "--admin-addr", "127.0.0.1:0")
	admin := regexp.MustCompile(`admin_addr=127\.0\.0\.1:(\d+)`).FindStringSubmatch(srv.stderr.String())
	if admin == nil {
		t.Fatalf("no admin listener:\n%s", srv.stderr.String())
	}
	httpPort := srv.base[strings.LastIndex(srv.base, ":")+1:]

	// An echoing UDP peer on loopback.
	peerPort := strconv.Itoa(testpeer.Start(t, peerBin))

	relay := func(peerPort string, messages int) string {
		t.Helper()
		args := []string{"-p", strconv.Itoa(port), "-e", "127.0.0.1", "-r", peerPort, "-n", strconv.Itoa(messages), "-l", "100", "-z", "5", "-c",
			"-W", secret, "-u", "alice", "127.0.0.1"}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, uclient, args...)
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	if out := relay(peerPort, 10); !strings.Contains(out, "Total lost packets 0 ") {
		t.Fatalf("relay to an allowed loopback peer failed:\n%s", out)
	}
	// Both at once: turnutils_uclient waits ~15 s for answers that never come.
	var wg sync.WaitGroup
	for name, p := range map[string]string{"HTTP": httpPort, "admin": admin[1]} {
		spy, err := net.ListenPacket("udp4", "127.0.0.1:"+p)
		if err != nil {
			t.Fatalf("binding UDP on the %s port: %v", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := make(chan int, 1)
			go func() {
				n, buf := 0, make([]byte, 2048)
				for {
					if _, _, err := spy.ReadFrom(buf); err != nil {
						got <- n
						return
					}
					n++
				}
			}()
			out := relay(p, 2)
			spy.Close()
			if n := <-got; n != 0 || strings.Contains(out, "Total lost packets 0 ") {
				t.Errorf("the relay reached the node's %s port %s: %d datagrams arrived\n%s", name, p, n, out)
			}
		}()
	}
	wg.Wait()
}
