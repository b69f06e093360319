package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
)

// drainHTTP calls POST (or DELETE) /v1/node/drain on base with body
// (JSON) and returns the status.
func drainHTTP(t *testing.T, method, base, query, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/v1/node/drain"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken(t))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrainDeadlineRejoin: two nodes on a real redis-server. A room's
// node is drained through POST /v1/node/drain with a 5 s deadline (JSON
// body): the room goes on until then; at the deadline every pion client
// still there gets a leave "server_shutdown" (what the SDK rejoins on),
// placement then names the other node, and the clients rejoin there with
// media. DELETE /v1/node/drain undrains: /readyz 200 again and a new
// room is placed on that node (the one with more free seats).
func TestDrainDeadlineRejoin(t *testing.T) {
	rs := testredis.Start(t, 0)
	lim := []string{"--api-secret", secret, "--redis-url", rs.URL(), "--connection-rate-per-ip", "1000", "--connection-burst-per-ip", "1000"}
	a := startServe(t, append(lim, "--node-id", "a")...)
	b := startServe(t, append(lim, "--node-id", "b")...)
	nodes := map[string]string{"a": a.base, "b": b.base}
	var p placement
	testclient.Eventually(t, 6*time.Second, "placement", func() bool {
		code, got := place(t, a.base, "exam-dl", 3)
		p = got
		return code == http.StatusOK && nodes[p.NodeID] == p.URL
	})
	home := p.URL
	proctor := testclient.Join(t, wsURL(home), secret, "exam-dl", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(home), secret, "exam-dl", "alice", room.RoleStudent)
	bob := testclient.Join(t, wsURL(home), secret, "exam-dl", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 20 && proctor.PacketsFrom(bob.Me.SID) > 20
	})

	if code := drainHTTP(t, http.MethodPost, home, "", `{"deadline": "bogus"}`); code != http.StatusBadRequest {
		t.Errorf("a malformed deadline answered %d, want 400", code)
	}
	if code := drainHTTP(t, http.MethodPost, home, "?deadline=-5s", ""); code != http.StatusBadRequest {
		t.Errorf("a negative ?deadline= answered %d, want 400", code)
	}
	if code := readyz(t, home); code != http.StatusOK {
		t.Errorf("/readyz after refused drains: %d, want 200 (not draining)", code)
	}
	if code := drainHTTP(t, http.MethodPost, home, "", `{"deadline": "5s"}`); code != http.StatusOK {
		t.Fatalf("drain: %d", code)
	}
	drained := time.Now()
	if code := readyz(t, home); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d", code)
	}
	// Before the deadline the room goes on.
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 4*time.Second, "media while draining", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+20 })

	for _, c := range []*testclient.Client{proctor, alice, bob} {
		m, ok := c.NextEvent("leave", 15*time.Second)
		if !ok {
			t.Fatalf("%s: no leave by the deadline", c.Me.Identity)
		}
		if m.Reason != room.ReasonShutdown {
			t.Errorf("%s: leave %q, want %q (the SDK rejoins on it)", c.Me.Identity, m.Reason, room.ReasonShutdown)
		}
	}
	if took := time.Since(drained); took < 4500*time.Millisecond {
		t.Errorf("clients sent away after %s, before the 5 s deadline", took)
	}

	// Rejoin through placement, as the SDK does: the room is now on the
	// other node.
	code, q := place(t, a.base, "exam-dl", 0)
	if code != http.StatusOK || q.URL == home || nodes[q.NodeID] != q.URL {
		t.Fatalf("placement after the deadline: %d %+v, want the other node than %s", code, q, home)
	}
	// A rejoin that reaches the drained node is sent on to the new owner.
	if m := joinReply(t, home, "exam-dl", "carol", room.RoleStudent); m["code"] != "redirect" || m["url"] != q.URL {
		t.Errorf("joining the drained node answered %v, want a redirect to %s", m, q.URL)
	}
	// The new node takes the room once the drained one has handed its
	// trail over (joins meanwhile answer unavailable, which the SDK
	// retries): a probe waits for it.
	testclient.Eventually(t, 15*time.Second, "the room's trail handed over", func() bool {
		return joinReply(t, q.URL, "exam-dl", "proctor-probe", room.RoleProctor)["type"] == "joined"
	})
	proctor2 := testclient.Join(t, wsURL(q.URL), secret, "exam-dl", "proctor-1", room.RoleProctor)
	alice2 := testclient.Join(t, wsURL(q.URL), secret, "exam-dl", "alice", room.RoleStudent)
	bob2 := testclient.Join(t, wsURL(q.URL), secret, "exam-dl", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media on the other node", func() bool {
		return proctor2.PacketsFrom(alice2.Me.SID) > 20 && proctor2.PacketsFrom(bob2.Me.SID) > 20
	})

	// Undrain: ready again, and new rooms come back to it.
	if code := drainHTTP(t, http.MethodDelete, home, "", ""); code != http.StatusOK {
		t.Fatalf("undrain: %d", code)
	}
	if code := readyz(t, home); code != http.StatusOK {
		t.Errorf("/readyz after undrain: %d", code)
	}
	testclient.Eventually(t, 8*time.Second, "a new room placed on the undrained node", func() bool {
		code, r := place(t, q.URL, "exam-after-"+time.Now().Format("150405.000000"), 3)
		return code == http.StatusOK && r.URL == home
	})
}

// TestServeDrainTimeout: serve's --drain-timeout. Stopped (SIGTERM) with
// a participant in a room, the node is not ready at once but the session
// goes on until the timeout, then gets a leave "server_shutdown".
func TestServeDrainTimeout(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--drain-timeout", "3s")
	proctor := testclient.Join(t, wsURL(srv.base), secret, "exam-t", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-t", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 20 })
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- srv.stop() }()
	testclient.Eventually(t, 2*time.Second, "/readyz 503 on SIGTERM", func() bool { return readyz(t, srv.base) == http.StatusServiceUnavailable })
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 2*time.Second, "media during the drain timeout", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+20 })
	m, ok := alice.NextEvent("leave", 10*time.Second)
	if !ok || m.Reason != room.ReasonShutdown {
		t.Fatalf("leave %+v %v, want %q", m, ok, room.ReasonShutdown)
	}
	if took := time.Since(start); took < 2500*time.Millisecond {
		t.Errorf("sent away after %s, before the 3 s drain timeout", took)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// TestDrainCommandTimeout: `invigil drain --drain-timeout 2s` with a
// participant who stays: the node sends it away at the deadline (leave
// "server_shutdown"), and the command returns soon after, drained.
func TestDrainCommandTimeout(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--admin-addr", "127.0.0.1:0")
	admin := regexp.MustCompile(`admin_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.stderr.String())
	if admin == nil {
		t.Fatalf("no admin listener:\n%s", srv.stderr.String())
	}
	alice := testclient.Join(t, wsURL(srv.base), secret, "exam-c", "alice", room.RoleStudent)
	var out, errOut bytes.Buffer
	start := time.Now()
	done := make(chan error, 1)
	go func() {
		done <- drain(context.Background(), []string{"--admin-addr", admin[1], "--drain-timeout", "2s"}, &out, &errOut)
	}()
	m, ok := alice.NextEvent("leave", 10*time.Second)
	if !ok || m.Reason != room.ReasonShutdown {
		t.Fatalf("leave %+v %v, want %q", m, ok, room.ReasonShutdown)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("sent away after %s, before the 2 s timeout", took)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("drain: %v\n%s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not return after the deadline")
	}
	if !strings.Contains(out.String(), "drained") {
		t.Errorf("drain said %q", out.String())
	}
	if code := readyz(t, srv.base); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after the drain command: %d, want 503 (still draining)", code)
	}
}
