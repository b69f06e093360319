package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestDrainCommand: `invigil drain` (the Kubernetes preStop hook) drains
// the node through its admin listener: /readyz turns 503 and no new room
// opens, while the room already running keeps its media; the command
// returns once the last participant has left.
func TestDrainCommand(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--admin-addr", "127.0.0.1:0")
	admin := regexp.MustCompile(`admin_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.stderr.String())
	if admin == nil {
		t.Fatalf("no admin listener:\n%s", srv.stderr.String())
	}
	url := wsURL(srv.base)
	proctor := testclient.Join(t, url, secret, "exam-d", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, url, secret, "exam-d", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 20 })

	var out, errOut bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- drain(context.Background(), []string{"--admin-addr", admin[1], "--drain-timeout", "30s"}, &out, &errOut)
	}()
	testclient.Eventually(t, 5*time.Second, "/readyz 503", func() bool {
		resp, err := http.Get(srv.base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	// A new room is refused; the running one goes on.
	c := testclient.Dial(t, url)
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": testclient.Mint(t, secret, "exam-new", "bob", room.RoleStudent)})
	if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Code != "draining" {
		t.Errorf("joining a new room while draining: %+v %v, want draining", m, err)
	}
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "media while draining", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+20 })
	select {
	case err := <-done:
		t.Fatalf("drain returned with participants still there: %v\n%s", err, out.String())
	default:
	}

	alice.Close()
	proctor.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drain: %v\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not return after everyone left")
	}
	if !strings.Contains(out.String(), "drained") {
		t.Errorf("drain said %q", out.String())
	}
}

// TestShutdownTellsClients: stopping serve (what SIGTERM does, with no
// drain timeout) tells each joined client why before closing: a leave
// with reason server_shutdown, then close status 1001 (going away); serve
// returns without an error.
func TestShutdownTellsClients(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	c := testclient.Dial(t, wsURL(srv.base))
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": testclient.Mint(t, secret, "exam-s", "alice", room.RoleStudent)})
	if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != "joined" {
		t.Fatalf("join: %+v %v", m, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- srv.stop() }()
	var leave testclient.Msg
	for leave.Type != "leave" {
		m, err := testclient.Recv(c, 5*time.Second)
		if err != nil {
			t.Fatalf("closed before a leave message: %v", err)
		}
		if m.Type == "leave" {
			leave = m
		}
	}
	if leave.Reason != room.ReasonShutdown {
		t.Errorf("leave reason %q, want %q", leave.Reason, room.ReasonShutdown)
	}
	if st := testclient.AssertClosed(t, c); st != websocket.StatusGoingAway {
		t.Errorf("close status %d, want 1001 (going away)", st)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve returned %v", err)
	}
}
