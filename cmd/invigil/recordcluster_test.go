package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
)

// TestClusterRecordings: two nodes on one real Redis. A session
// recorded on node a is listed through node b (the recordings index in
// Redis), its segment downloaded through b with HTTP Range (206 with a's
// bytes: b forwards the call to a), and its manifest, fetched through b,
// verifies with b's GET /v1/recordings/keys, which holds a's key beside
// b's own; so do a's keys. A session no node has is 404 through b.
// With Redis down the listing, a file and the keys are 503 unavailable.
func TestClusterRecordings(t *testing.T) {
	rs := testredis.Start(t, 0)
	dirA := t.TempDir()
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a", "--data-dir", dirA, "--record")
	b := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "b", "--record")
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-c", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-c", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from alice on node a", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 60 })
	alice.Close()

	reviewer := mintFor(t, "exam-c", "rev", room.RoleReviewer)
	get := func(base, path, token string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
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
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	var m *record.Manifest
	testclient.Eventually(t, 10*time.Second, "alice's finished session listed through node b", func() bool {
		resp, body := get(b.base, "/v1/rooms/exam-c/recordings", reviewer)
		var got struct {
			Recordings []*record.Manifest `json:"recordings"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || len(got.Recordings) != 1 || got.Recordings[0].Ended.IsZero() {
			return false
		}
		m = got.Recordings[0]
		return true
	})
	if m.Node != "a" || m.Identity != "alice" || len(m.Files) == 0 {
		t.Fatalf("manifest listed through b: %+v", m)
	}
	if _, err := os.Stat(filepath.Join(dirA, "recordings", "exam-c", "alice", m.Files[0].Name)); err != nil {
		t.Fatalf("the segment is not on node a's disk: %v", err)
	}
	whole, err := os.ReadFile(filepath.Join(dirA, "recordings", "exam-c", "alice", m.Files[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) < 200 {
		t.Fatalf("the segment has %d bytes", len(whole))
	}
	filePath := "/v1/rooms/exam-c/recordings/" + m.Session + "/" + m.Files[0].Name

	resp, part := get(b.base, filePath, reviewer, "Range", "bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[100:200]) {
		t.Fatalf("range through b: HTTP %d, %d bytes (equal %v)", resp.StatusCode, len(part), bytes.Equal(part, whole[100:200]))
	}
	if want := fmt.Sprintf("bytes 100-199/%d", len(whole)); resp.Header.Get("Content-Range") != want {
		t.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), want)
	}
	resp, full := get(b.base, filePath, reviewer)
	sum := sha256.Sum256(full)
	if resp.StatusCode != http.StatusOK || hex.EncodeToString(sum[:]) != m.Files[0].SHA256 || int64(len(full)) != m.Files[0].Bytes {
		t.Fatalf("whole file through b: HTTP %d, %d bytes; not the manifest's SHA-256 and size", resp.StatusCode, len(full))
	}
	if resp, _ := get(b.base, filePath, mintFor(t, "exam-other", "rev", room.RoleReviewer)); resp.StatusCode != http.StatusForbidden {
		t.Errorf("reviewer of another room through b: HTTP %d, want 403", resp.StatusCode)
	}

	resp, raw := get(b.base, "/v1/rooms/exam-c/recordings/"+m.Session+"/"+m.Session+record.ManifestSuffix, reviewer)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest through b: HTTP %d", resp.StatusCode)
	}
	keys := func(base string) *record.Keyring {
		resp, body := get(base, "/v1/recordings/keys", "")
		k, err := record.ParseKeyring(body)
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("%s keys: HTTP %d %v", base, resp.StatusCode, err)
		}
		return k
	}
	var ring *record.Keyring
	testclient.Eventually(t, 5*time.Second, "node b's and a's keys each holding both nodes' keys", func() bool {
		ring = keys(b.base)
		_, hasA := ring.Lookup(m.KeyID)
		return hasA && len(ring.Keys) == 2 && len(keys(a.base).Keys) == 2
	})
	if resp, body := get(b.base, "/v1/rooms/exam-c/recordings/20200101T000000000Z/"+m.Files[0].Name, reviewer); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a session no node has, through b: HTTP %d %s, want 404", resp.StatusCode, body)
	}
	got, err := record.VerifySignature(raw, record.Trust{Keys: ring})
	if err != nil {
		t.Fatalf("the manifest fetched through b does not verify with b's keys: %v", err)
	}
	// The whole session, fetched through b, passes the checks
	// `invigil verify` makes offline.
	dir := t.TempDir()
	for _, f := range got.Files {
		resp, body := get(b.base, "/v1/rooms/exam-c/recordings/"+m.Session+"/"+f.Name, reviewer)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s through b: HTTP %d", f.Name, resp.StatusCode)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, m.Session+record.ManifestSuffix), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, problems := record.VerifyFile(filepath.Join(dir, m.Session+record.ManifestSuffix), record.Trust{Keys: ring}); len(problems) > 0 {
		t.Errorf("verify of the session downloaded through b: %v", problems)
	}

	// Redis gone: no partial answers, 503 unavailable.
	rs.Stop()
	for _, path := range []string{"/v1/rooms/exam-c/recordings", filePath, "/v1/recordings/keys"} {
		resp, body := get(b.base, path, reviewer)
		var e struct{ Code string }
		if json.Unmarshal(body, &e); resp.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
			t.Errorf("%s with Redis down: HTTP %d %s, want 503 unavailable", path, resp.StatusCode, body)
		}
	}
}

// TestClusterRecordingsFromStore: two nodes on one Redis whose
// --recording-store is one shared directory (as an S3 bucket would be).
// Once node a's session is stored (its local copy gone) and node a is
// stopped, node b still lists it (index and store) and serves it with
// HTTP Range from the store, with no node to forward to.
func TestClusterRecordingsFromStore(t *testing.T) {
	rs := testredis.Start(t, 0)
	shared := t.TempDir()
	dirA := t.TempDir()
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a", "--data-dir", dirA, "--record", "--recording-store", shared)
	b := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "b", "--record", "--recording-store", shared)
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-s", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-s", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from alice on node a", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 60 })
	alice.Close()
	manifests := func() []string {
		ms, _ := filepath.Glob(filepath.Join(shared, "exam-s", "alice", "*"+record.ManifestSuffix))
		return ms
	}
	testclient.Eventually(t, 15*time.Second, "alice's session stored and gone from node a's disk", func() bool {
		local, _ := filepath.Glob(filepath.Join(dirA, "recordings", "exam-s", "alice", "*"))
		return len(manifests()) == 1 && len(local) == 0
	})
	proctor.Close()
	if err := a.stop(); err != nil {
		t.Fatalf("node a did not stop: %v", err)
	}

	reviewer := mintFor(t, "exam-s", "rev", room.RoleReviewer)
	req, _ := http.NewRequest(http.MethodGet, b.base+"/v1/rooms/exam-s/recordings", nil)
	req.Header.Set("Authorization", "Bearer "+reviewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Recordings []*record.Manifest `json:"recordings"`
	}
	err = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(got.Recordings) != 1 || got.Recordings[0].Node != "a" || len(got.Recordings[0].Files) == 0 {
		t.Fatalf("listing through b with a stopped: HTTP %d %v %+v", resp.StatusCode, err, got.Recordings)
	}
	m := got.Recordings[0]
	whole, err := os.ReadFile(filepath.Join(shared, "exam-s", "alice", m.Files[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(http.MethodGet, b.base+"/v1/rooms/exam-s/recordings/"+m.Session+"/"+m.Files[0].Name, nil)
	req.Header.Set("Authorization", "Bearer "+reviewer)
	req.Header.Set("Range", "bytes=100-199")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[100:200]) {
		t.Fatalf("range through b from the store: HTTP %d, %d bytes (equal %v)", resp.StatusCode, len(part), bytes.Equal(part, whole[100:200]))
	}
}

// TestClusterRecordingsRedisOutage: Redis is down when a session ends on
// node a, so its last index write fails; Redis comes back empty, and
// node a writes the session's final state again, so that node b lists
// it, ended. Redis restarting empty once more, node a restarted on its
// data dir indexes what its disk holds again, and b lists it again.
func TestClusterRecordingsRedisOutage(t *testing.T) {
	rs := testredis.Start(t, 0)
	dirA := t.TempDir()
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a", "--record", "--data-dir", dirA)
	b := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "b", "--record")
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-o", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-o", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from alice on node a", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 60 })
	rs.Stop()
	alice.Close()
	testclient.Eventually(t, 10*time.Second, "node a failing to write the index", func() bool {
		return strings.Contains(a.stderr.String(), "recordings index not written")
	})
	back := testredis.Start(t, rs.Port)
	reviewer := mintFor(t, "exam-o", "rev", room.RoleReviewer)
	listedOnB := func() bool {
		req, _ := http.NewRequest(http.MethodGet, b.base+"/v1/rooms/exam-o/recordings", nil)
		req.Header.Set("Authorization", "Bearer "+reviewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var got struct {
			Recordings []*record.Manifest `json:"recordings"`
		}
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&got) == nil &&
			len(got.Recordings) == 1 && got.Recordings[0].Node == "a" && !got.Recordings[0].Ended.IsZero()
	}
	testclient.Eventually(t, 15*time.Second, "alice's ended session listed through b", listedOnB)

	proctor.Close()
	if err := a.stop(); err != nil {
		t.Fatalf("node a did not stop: %v", err)
	}
	back.Stop()
	testredis.Start(t, rs.Port) // empty again
	if listedOnB() {
		t.Fatal("listed with an empty Redis and node a stopped: the test proves nothing")
	}
	startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a", "--record", "--data-dir", dirA)
	testclient.Eventually(t, 15*time.Second, "alice's session listed through b after node a restarted", listedOnB)
}
