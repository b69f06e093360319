package e2e

import (
	"net/http"
	"testing"
)

// TestBrowserRoomEnded: a student's page in headless Chromium, live in
// the room; the exam platform ends the room (DELETE /v1/rooms/{room});
// the page says the exam has ended and does not rejoin.
func TestBrowserRoomEnded(t *testing.T) {
	s := newScene(t)
	alice := s.open(t, "student", "alice", "Alice")
	tabs := []*tab{alice}
	status := `document.getElementById('status').dataset.state`
	waitFor(t, tabs, "alice's page live", func() (bool, string) {
		got := mustEval[string](t, alice, status)
		return got == "live", got
	})
	admin := s.srv.token(t, s.ctx, "*", "api", "admin", "API")
	req, _ := http.NewRequestWithContext(s.ctx, http.MethodDelete, s.srv.url("/v1/rooms/"+room), nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the room: HTTP %d", resp.StatusCode)
	}
	waitFor(t, tabs, "alice's page saying the exam has ended", func() (bool, string) {
		got := mustEval[string](t, alice, `document.body.dataset.ended + '|' + `+status+` + '|' + document.getElementById('preflight-title').textContent`)
		return got == "room_ended|ended|The exam has ended", got
	})
}
