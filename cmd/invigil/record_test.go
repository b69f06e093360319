package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

// TestRecordClaim: without --record only the student whose token says
// "record": true is recorded; the listing is for admins only and shows
// that student's signed manifest once they leave, verifiable with the
// node's published keyring; the recording counts in /metrics.
func TestRecordClaim(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServe(t, "--api-secret", secret, "--data-dir", dataDir)
	ws := "ws" + srv.base[len("http"):] + "/v1/rtc"
	proctor := testclient.Join(t, ws, secret, "exam-r", "proctor-1", room.RoleProctor)
	alice := testclient.JoinWith(t, ws, testclient.Options{Secret: secret, Room: "exam-r", Identity: "alice", Role: room.RoleStudent, Record: true})
	bob := testclient.Join(t, ws, secret, "exam-r", "bob", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from both students", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 60 && proctor.PacketsFrom(bob.Me.SID) > 60
	})
	if v := value(parse(t, scrape(t, srv.base)), "invigil_recordings", nil); v != 1 {
		t.Errorf("invigil_recordings %v, want 1 (alice)", v)
	}
	alice.Close()

	mint := func(roomName, id string, role room.Role) string {
		tok, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: roomName, Identity: id, Role: role, TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	list := func(token string) (int, []*record.Manifest) {
		req, _ := http.NewRequest(http.MethodGet, srv.base+"/v1/rooms/exam-r/recordings", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Recordings []*record.Manifest `json:"recordings"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Recordings
	}
	if code, _ := list(""); code != http.StatusUnauthorized {
		t.Errorf("no token: HTTP %d, want 401", code)
	}
	if code, _ := list(mint("exam-r", "proctor-1", room.RoleProctor)); code != http.StatusForbidden {
		t.Errorf("proctor token: HTTP %d, want 403", code)
	}
	admin := mint(signaling.AllRooms, "api", room.RoleAdmin)
	var ms []*record.Manifest
	testclient.Eventually(t, 10*time.Second, "alice's finished recording listed", func() bool {
		code, got := list(admin)
		ms = got
		return code == http.StatusOK && len(got) == 1 && !got[0].Ended.IsZero()
	})
	m := ms[0]
	if m.Identity != "alice" || m.StopReason != "tracks_ended" || len(m.Files) == 0 {
		t.Fatalf("manifest %+v", m)
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "recording-keys", record.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := record.ParseKeyring(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := record.Verify(m, record.Trust{Keys: ring}, ""); err != nil {
		t.Errorf("manifest does not verify with the node's keyring: %v", err)
	}
}
