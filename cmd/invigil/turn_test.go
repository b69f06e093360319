package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/internal/testclient"
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
	alice := testclient.JoinWith(t, ws, secret, "exam-1", "alice", room.RoleStudent, testclient.Options{RelayOnly: true})

	if len(alice.ICEServers) != 1 {
		t.Fatalf("joined handed %d ice servers", len(alice.ICEServers))
	}
	is := alice.ICEServers[0]
	want := turn.URLs("127.0.0.1", port, 0)
	if strings.Join(is.URLs, ",") != strings.Join(want, ",") {
		t.Errorf("ice server URLs %v, want %v", is.URLs, want)
	}
	if user, pass := turn.Credentials([]byte(secret), "alice", time.Now()); !strings.HasSuffix(is.Username, ":alice") || pass == "" || user == "" {
		t.Errorf("username %q is not the REST scheme's <expiry>:<identity>", is.Username)
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.stderr.String())
		}
	})
	testclient.Eventually(t, 15*time.Second, "relayed media at the proctor", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })
	fams := parse(t, scrape(t, srv.base))
	if v := value(fams, "invigil_ice_connections_total", map[string]string{"result": "success", "candidate_type": "relay"}); v != 1 {
		t.Errorf("relay connections counted %v, want 1 (alice)", v)
	}
	if v := value(fams, "invigil_turn_allocations", nil); v < 1 {
		t.Errorf("turn allocations %v", v)
	}
	if v := value(fams, "invigil_turn_relayed_bytes_total", nil); v < 10_000 {
		t.Errorf("relayed bytes %v", v)
	}
}

// TestTURNSecretLength: outside --dev, a short TURN secret is refused
// like a short API secret.
func TestTURNSecretLength(t *testing.T) {
	_, err := parseServe([]string{"--api-secret", secret, "--turn-secret", "short"}, &logbuf.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--turn-secret must be at least 32 bytes") {
		t.Fatalf("got %v", err)
	}
	if _, err := parseServe([]string{"--api-secret", secret, "--turn-allow-peers", "10.0.0.0/33"}, &logbuf.Buffer{}); err == nil {
		t.Fatal("a bad CIDR was accepted")
	}
}
