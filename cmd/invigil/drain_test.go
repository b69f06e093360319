package main

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

// TestDrain: an admin drains a node over HTTP (no new rooms, /readyz 503,
// agent-check "drain", running rooms go on) and brings it back; then
// SIGTERM with --drain-timeout lets the running room finish before the
// node stops.
func TestDrain(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--drain-timeout", "30s", "--agent-addr", "127.0.0.1:0")
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/v1/rtc"
	agentAddr := regexp.MustCompile(`agent_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.stderr.String())[1]
	agent := func() string {
		c, err := net.Dial("tcp", agentAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	status := func(method, path, token string) int {
		req, _ := http.NewRequest(method, srv.base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	mint := func(roomName, id string, role room.Role) string {
		tok, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: roomName, Identity: id, Role: role, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin := mint("*", "api", room.RoleAdmin)

	proctor := testclient.Join(t, ws, secret, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, ws, secret, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 10 })

	if c := status("POST", "/v1/node/drain", ""); c != 401 {
		t.Errorf("drain without a token: %d", c)
	}
	if c := status("POST", "/v1/node/drain", mint("exam-1", "alice", room.RoleStudent)); c != 403 {
		t.Errorf("drain with a student token: %d", c)
	}
	if c := status("POST", "/v1/node/drain", admin); c != 200 {
		t.Fatalf("drain: %d", c)
	}
	if c := status("GET", "/readyz", ""); c != 503 {
		t.Errorf("/readyz while draining: %d", c)
	}
	if a := agent(); a != "drain\n" {
		t.Errorf("agent-check while draining: %q", a)
	}
	// No new room; the running room still admits.
	c := testclient.Dial(t, ws)
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint("exam-2", "bob", room.RoleStudent)})
	if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Code != signaling.CodeDraining {
		t.Errorf("join to a new room while draining: %+v %v", m, err)
	}
	carol := testclient.Join(t, ws, secret, "exam-1", "carol", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "carol's media in the draining node's room", func() bool { return proctor.PacketsFrom(carol.Me.SID) > 10 })

	if c := status("DELETE", "/v1/node/drain", admin); c != 200 {
		t.Fatalf("undrain: %d", c)
	}
	if c := status("GET", "/readyz", ""); c != 200 {
		t.Errorf("/readyz after undrain: %d", c)
	}
	if a := agent(); !strings.HasPrefix(a, "ready up ") {
		t.Errorf("agent-check after undrain: %q", a)
	}

	// SIGTERM (the context serve runs under) with --drain-timeout: the
	// room goes on until its participants leave, then the node stops.
	stopped := make(chan error, 1)
	go func() { stopped <- srv.stop() }()
	testclient.Eventually(t, 5*time.Second, "/readyz 503 after SIGTERM", func() bool { return status("GET", "/readyz", "") == 503 })
	before := proctor.PacketsFrom(alice.Me.SID)
	time.Sleep(time.Second)
	select {
	case err := <-stopped:
		t.Fatalf("serve stopped with the room still running: %v", err)
	default:
	}
	if proctor.PacketsFrom(alice.Me.SID) <= before {
		t.Error("media stopped while draining")
	}
	for _, c := range []*testclient.Client{alice, carol, proctor} {
		c.Close()
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop once the room had ended")
	}
	if !strings.Contains(srv.stderr.String(), "drained: every room has ended") {
		t.Errorf("no drained line:\n%s", srv.stderr.String())
	}
}
