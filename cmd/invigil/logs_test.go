package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestSessionLogsJSON: with --log-format json every line serve writes is
// one JSON object with time, level and msg, and every line about a
// participant's session (it names the participant's session id or
// identity) carries the room, the identity and the session id, so an
// operator can follow one student through the log.
func TestSessionLogsJSON(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--log-format", "json", "--log-level", "debug")
	url := wsURL(srv.base)
	proctor := testclient.Join(t, url, secret, "exam-log", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, url, secret, "exam-log", "alice-4711", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 20 })
	alice.Send(map[string]any{"v": 1, "type": "focus", "identity": "x"}) // refused: a Debug line
	alice.Close()
	testclient.Eventually(t, 5*time.Second, "alice's session ended", func() bool {
		return strings.Contains(srv.stderr.String(), `"session ended"`) && strings.Contains(srv.stderr.String(), alice.Me.SID)
	})

	about := 0
	for _, line := range strings.Split(strings.TrimSpace(srv.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", line, err)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("line without time, level or msg: %s", line)
		}
		if !strings.Contains(line, alice.Me.SID) && !strings.Contains(line, "alice-4711") {
			continue
		}
		about++
		if rec["room"] != "exam-log" || rec["identity"] != "alice-4711" || rec["sid"] != alice.Me.SID {
			t.Errorf("a line about alice's session lacks room, identity or sid: %s", line)
		}
	}
	if about < 4 {
		t.Errorf("only %d lines about alice's session (joined, refused request, ended, …)", about)
	}
}
