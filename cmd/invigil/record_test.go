package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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

	mint := func(roomName, id string, role room.Role) string { return mintFor(t, roomName, id, role) }
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

// TestRecordingsForReviewers: a reviewer of the room (or of every room)
// and an admin list its recordings and download a file with HTTP Range
// (206 with the requested bytes); a student, a proctor and a reviewer of
// another room are refused with the documented codes; the manifest comes
// as stored and verifies with GET /v1/recordings/keys, which needs no
// token.
func TestRecordingsForReviewers(t *testing.T) {
	srv, dataDir := recordAlice(t)
	mint := func(roomName, id string, role room.Role) string { return mintFor(t, roomName, id, role) }
	get := func(path, token string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	reviewer := mint("exam-v", "rev", room.RoleReviewer)
	var m *record.Manifest
	testclient.Eventually(t, 10*time.Second, "alice's finished recording listed for the reviewer", func() bool {
		resp, b := get("/v1/rooms/exam-v/recordings", reviewer)
		var body struct {
			Recordings []*record.Manifest `json:"recordings"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil || len(body.Recordings) != 1 || body.Recordings[0].Ended.IsZero() {
			return false
		}
		m = body.Recordings[0]
		return true
	})
	if len(m.Files) == 0 {
		t.Fatalf("manifest lists no file: %+v", m)
	}
	f := m.Files[0]
	filePath := "/v1/rooms/exam-v/recordings/" + m.Session + "/" + f.Name
	whole, err := os.ReadFile(filepath.Join(dataDir, "recordings", "exam-v", "alice", f.Name))
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) < 200 {
		t.Fatalf("the segment has %d bytes", len(whole))
	}

	for name, tok := range map[string]string{"reviewer": reviewer, "reviewer of every room": mint("*", "rev", room.RoleReviewer), "admin": mint("*", "api", room.RoleAdmin)} {
		t.Run(name, func(t *testing.T) {
			resp, b := get(filePath, tok, "Range", "bytes=100-199")
			if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, whole[100:200]) {
				t.Fatalf("range: HTTP %d, %d bytes (equal %v)", resp.StatusCode, len(b), bytes.Equal(b, whole[100:200]))
			}
			if want := fmt.Sprintf("bytes 100-199/%d", len(whole)); resp.Header.Get("Content-Range") != want {
				t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
			}
			if resp.Header.Get("Content-Type") != f.Type {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), f.Type)
			}
			resp, b = get(filePath, tok)
			if resp.StatusCode != http.StatusOK || !bytes.Equal(b, whole) {
				t.Fatalf("whole file: HTTP %d, %d bytes of %d", resp.StatusCode, len(b), len(whole))
			}
		})
	}

	refusals := []struct {
		name, token string
		status      int
		code        string
	}{
		{"no token", "", http.StatusUnauthorized, "token_missing"},
		{"student", mint("exam-v", "alice", room.RoleStudent), http.StatusForbidden, "forbidden"},
		{"proctor", mint("exam-v", "proctor-1", room.RoleProctor), http.StatusForbidden, "forbidden"},
		{"reviewer of another room", mint("exam-other", "rev", room.RoleReviewer), http.StatusForbidden, "forbidden"},
	}
	for _, tc := range refusals {
		for _, path := range []string{filePath, "/v1/rooms/exam-v/recordings"} {
			resp, b := get(path, tc.token)
			var e struct{ Code string }
			if json.Unmarshal(b, &e); resp.StatusCode != tc.status || e.Code != tc.code {
				t.Errorf("%s on %s: HTTP %d %s, want %d %s", tc.name, path, resp.StatusCode, b, tc.status, tc.code)
			}
		}
	}
	for _, path := range []string{"/v1/rooms/exam-v/recordings/" + m.Session + "/keyring.json", "/v1/rooms/exam-v/recordings/nosuch/" + f.Name} {
		if resp, b := get(path, reviewer); resp.StatusCode != http.StatusNotFound || !bytes.Contains(b, []byte(`"recording_not_found"`)) {
			t.Errorf("%s: HTTP %d %s, want 404 recording_not_found", path, resp.StatusCode, b)
		}
	}

	resp, raw := get("/v1/rooms/exam-v/recordings/"+m.Session+"/"+m.Session+record.ManifestSuffix, reviewer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: HTTP %d", resp.StatusCode)
	}
	resp, keys := get("/v1/recordings/keys", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("keys: HTTP %d", resp.StatusCode)
	}
	ring, err := record.ParseKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := record.VerifySignature(raw, record.Trust{Keys: ring}); err != nil {
		t.Errorf("the served manifest does not verify with the served keys: %v", err)
	}
}

// mintFor signs a minute-long token of role for identity id in roomName.
func mintFor(t *testing.T, roomName, id string, role room.Role) string {
	t.Helper()
	tok, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: roomName, Identity: id, Role: role, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
