package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
)

// recordedSession runs a node that records a student (a pion peer
// publishing VP8 and Opus) for a couple of seconds and returns the
// student's directory once the manifest is final, and the node's
// keyring file.
func recordedSession(t *testing.T) (dir, keyring string) {
	t.Helper()
	_, dataDir := recordAlice(t)
	dir = filepath.Join(dataDir, "recordings", "exam-v", "alice")
	testclient.Eventually(t, 10*time.Second, "alice's manifest final", func() bool {
		paths, _ := filepath.Glob(filepath.Join(dir, "*"+record.ManifestSuffix))
		if len(paths) != 1 {
			return false
		}
		m, err := record.ReadManifest(paths[0])
		return err == nil && !m.Ended.IsZero() && len(m.Files) > 0
	})
	return dir, filepath.Join(dataDir, "recording-keys", record.KeyringFile)
}

// recordAlice runs a node with --record in which student alice of room
// exam-v publishes until a proctor has had 60 of her packets, and then
// leaves; it returns the node and its data directory.
func recordAlice(t *testing.T) (srv *served, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	srv = startServe(t, "--api-secret", secret, "--data-dir", dataDir, "--record")
	ws := "ws" + srv.base[len("http"):] + "/v1/rtc"
	proctor := testclient.Join(t, ws, secret, "exam-v", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, ws, secret, "exam-v", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media from alice", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 60 })
	alice.Close()
	return srv, dataDir
}

// copySession copies a student's directory, so a case can damage it.
func copySession(t *testing.T, src string) (dir, manifest string) {
	t.Helper()
	dir = t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o640); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), record.ManifestSuffix) {
			manifest = filepath.Join(dir, e.Name())
		}
	}
	return dir, manifest
}

// editManifest rewrites the manifest's JSON through edit.
func editManifest(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	m := map[string]any{}
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.MarshalIndent(m, "", "\t") // another layout: the signature covers the canonical form
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o640); err != nil {
		t.Fatal(err)
	}
}

// resign signs m with priv as the recorder would, naming keyID.
func resign(t *testing.T, m map[string]any, priv ed25519.PrivateKey, keyID string) {
	t.Helper()
	m["key_id"] = keyID
	m["signature"] = ""
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := record.SignedBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	m["signature"] = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, msg))
}

// TestVerify: `invigil verify` passes a session a node recorded, with
// the keys from a file or from a URL, and fails, naming the difference,
// a changed byte, a changed manifest field, a missing segment, a
// signature by another key (under its own ID or the node's), and a
// manifest re-signed with a key it carries itself. A version-1 (HMAC)
// manifest still verifies with the API secret. Usage errors exit 2.
func TestVerify(t *testing.T) {
	session, keyring := recordedSession(t)
	ringJSON, err := os.ReadFile(keyring)
	if err != nil {
		t.Fatal(err)
	}
	keysSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(ringJSON)
	}))
	defer keysSrv.Close()
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherID := record.KeyID(otherPriv.Public().(ed25519.PublicKey))
	ring, err := record.ParseKeyring(ringJSON)
	if err != nil || len(ring.Keys) != 1 {
		t.Fatalf("the node's keyring: %v, %+v", err, ring)
	}
	nodeID := ring.Keys[0].ID

	firstFile := func(t *testing.T, manifest string) string {
		m, err := record.ReadManifest(manifest)
		if err != nil {
			t.Fatal(err)
		}
		return m.Files[0].Name
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir, manifest string) // nil: intact
		keys   []string                                 // default: the keyring file
		code   int
		says   string // in the output
	}{
		{name: "intact", code: 0, says: "ok "},
		{name: "intact, keys from a URL", keys: []string{"--keys", keysSrv.URL + "/v1/recordings/keys"}, code: 0, says: "ok "},
		{name: "a changed byte", code: 1, says: "SHA-256", damage: func(t *testing.T, dir, manifest string) {
			path := filepath.Join(dir, firstFile(t, manifest))
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0x01
			os.WriteFile(path, b, 0o640)
		}},
		{name: "a changed manifest field", code: 1, says: "signature does not verify", damage: func(t *testing.T, _, manifest string) {
			editManifest(t, manifest, func(m map[string]any) { m["identity"] = "mallory" })
		}},
		{name: "a missing segment", code: 1, says: ": missing", damage: func(t *testing.T, dir, manifest string) {
			os.Remove(filepath.Join(dir, firstFile(t, manifest)))
		}},
		{name: "signed by another key", code: 1, says: "not among the trusted keys", damage: func(t *testing.T, _, manifest string) {
			editManifest(t, manifest, func(m map[string]any) { m["identity"] = "mallory"; resign(t, m, otherPriv, otherID) })
		}},
		{name: "signed by another key under the node's key ID", code: 1, says: "does not verify with key " + nodeID, damage: func(t *testing.T, _, manifest string) {
			editManifest(t, manifest, func(m map[string]any) { resign(t, m, otherPriv, nodeID) })
		}},
		{name: "re-signed with a key it carries", code: 1, says: "not among the trusted keys", damage: func(t *testing.T, _, manifest string) {
			editManifest(t, manifest, func(m map[string]any) {
				m["public_key"] = base64.StdEncoding.EncodeToString(otherPriv.Public().(ed25519.PublicKey))
				m["keys"] = []any{map[string]any{"id": otherID, "alg": "Ed25519", "public_key": m["public_key"]}}
				resign(t, m, otherPriv, otherID)
			})
		}},
		{name: "re-laid-out, same content", code: 0, says: "ok ", damage: func(t *testing.T, _, manifest string) {
			editManifest(t, manifest, func(map[string]any) {})
		}},
		{name: "version 1 (HMAC) with the API secret", keys: []string{"--api-secret", secret}, code: 0, says: "signed by HMAC", damage: func(t *testing.T, _, manifest string) {
			toVersion1(t, manifest, derivedManifestKey(secret))
		}},
		{name: "version 1 (HMAC) with another secret", keys: []string{"--api-secret", strings.Repeat("x", 40)}, code: 1, says: "HMAC does not match", damage: func(t *testing.T, _, manifest string) {
			toVersion1(t, manifest, derivedManifestKey(secret))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, manifest := copySession(t, session)
			if c.damage != nil {
				c.damage(t, dir, manifest)
			}
			keys := c.keys
			if keys == nil {
				keys = []string{"--keys", keyring}
			}
			var stdout, stderr bytes.Buffer
			code := run(append(append([]string{"verify"}, keys...), dir), &stdout, &stderr)
			if code != c.code || !strings.Contains(stdout.String(), c.says) {
				t.Errorf("exit %d, want %d; output should say %q:\n%s%s", code, c.code, c.says, stdout.String(), stderr.String())
			}
		})
	}

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"verify"}, {"verify", session}, {"verify", "--no-such-flag", session}} {
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 2 {
				t.Errorf("%v: exit %d, want 2", args, code)
			}
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{"verify", "--keys", keyring, t.TempDir()}, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "no manifest") {
			t.Errorf("a directory with no manifest: exit %d\n%s", code, stdout.String())
		}
	})
}

// toVersion1 rewrites a manifest as one recorded before Ed25519 signing:
// version 1, no key_id, signature the hex HMAC-SHA256 of Go's encoding
// of the manifest with the signature empty (docs/recording.md).
func toVersion1(t *testing.T, path string, key []byte) {
	t.Helper()
	m, err := record.ReadManifest(path)
	if err != nil {
		t.Fatal(err)
	}
	m.Version, m.KeyID, m.Signature = 1, "", ""
	for i := range m.Files {
		m.Files[i].Type = "" // not in version 1
	}
	b, _ := json.Marshal(m)
	h := hmac.New(sha256.New, key)
	h.Write(b)
	m.Signature = hex.EncodeToString(h.Sum(nil))
	out, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, out, 0o640); err != nil {
		t.Fatal(err)
	}
}
