package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSignerRotation: the first start generates a key (mode 0600) and a
// keyring naming it; a restart keeps it; a rotation retires it and signs
// with a new one, while manifests the old key signed before still verify
// with the published keyring, and one it claims to have signed after its
// retirement does not. A key given by file joins the keyring the same way.
func TestSignerRotation(t *testing.T) {
	dir := t.TempDir()
	clock := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	open := func(cfg SignerConfig) *Signer {
		t.Helper()
		cfg.Dir, cfg.Logger, cfg.Now = dir, testLogger(t), func() time.Time { return clock }
		s, err := OpenSigner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := open(SignerConfig{})
	if st, err := os.Stat(filepath.Join(dir, SigningKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if again := open(SignerConfig{}); again.KeyID() != first.KeyID() {
		t.Fatalf("a restart changed the key: %s → %s", first.KeyID(), again.KeyID())
	}
	old := signedManifest(t, first, clock.Add(-time.Hour))

	clock = clock.Add(24 * time.Hour)
	rotated := open(SignerConfig{Rotate: true})
	if rotated.KeyID() == first.KeyID() {
		t.Fatal("rotation kept the key")
	}
	b, err := os.ReadFile(filepath.Join(dir, KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	ring, err := ParseKeyring(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ring.Keys) != 2 || ring.Keys[0].ID != first.KeyID() || !ring.Keys[0].Retired.Equal(clock) ||
		ring.Keys[1].ID != rotated.KeyID() || !ring.Keys[1].Retired.IsZero() {
		t.Fatalf("keyring after rotation: %s", b)
	}
	published, _ := rotated.PublicKeys().JSON()
	if !bytes.Equal(bytes.TrimSpace(b), published) {
		t.Errorf("the published keyring differs from the file:\n%s\n%s", published, b)
	}
	trust := Trust{Keys: ring}
	if _, err := VerifySignature(old, trust); err != nil {
		t.Errorf("a manifest signed before the rotation: %v", err)
	}
	if _, err := VerifySignature(signedManifest(t, rotated, clock.Add(time.Hour)), trust); err != nil {
		t.Errorf("a manifest signed after the rotation: %v", err)
	}
	late := signedManifest(t, first, clock.Add(time.Hour)) // the retired key, as if stolen
	if _, err := VerifySignature(late, trust); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a session started after its key's retirement: %v, want ErrUntrusted", err)
	}

	// A key from a file (a secret store, say) becomes the current one.
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "node.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	clock = clock.Add(time.Hour)
	given := open(SignerConfig{KeyFile: keyFile})
	if given.KeyID() != KeyID(priv.Public().(ed25519.PublicKey)) {
		t.Fatal("the key file's key is not the one signing")
	}
	if ks := given.PublicKeys().Keys; len(ks) != 3 || ks[1].Retired.IsZero() || !ks[2].Retired.IsZero() {
		t.Errorf("keyring with a given key: %+v", ks)
	}
}

// signedManifest is a manifest that signer signed, of a session started
// at started, as stored.
func signedManifest(t *testing.T, s *Signer, started time.Time) []byte {
	t.Helper()
	m := &Manifest{Room: "exam", Identity: "nia", Session: "s1", Started: started, Files: []File{}, Gaps: []Gap{}}
	if err := m.sign(s); err != nil {
		t.Fatal(err)
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return b
}

// TestParseKeyringRefuses: a key whose ID is not its own, of another
// algorithm or size, is refused.
func TestParseKeyringRefuses(t *testing.T) {
	good, _ := testSigner.PublicKeys().JSON()
	if _, err := ParseKeyring(good); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(string) string{
		"another ID": func(s string) string { return strings.Replace(s, testSigner.KeyID(), "0011223344556677", 1) },
		"another alg": func(s string) string {
			return strings.Replace(s, `"Ed25519"`, `"ES256"`, 1)
		},
		"short key": func(s string) string { return strings.Replace(s, `"public_key": "`, `"public_key": "AAAA`, 1) },
	} {
		if _, err := ParseKeyring([]byte(edit(string(good)))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSignedBytes: what a signature covers is the manifest's content,
// not its layout (RFC 8785): reordered members and other whitespace sign
// the same; members the package does not know are covered; duplicate
// members, non-integer numbers and trailing data have no canonical form.
func TestSignedBytes(t *testing.T) {
	a, err := SignedBytes([]byte(`{"b": 1, "a": "x\u00e9\n", "signature": "zz", "c": [true, null, {"y": 2, "x": -3}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "invigil recording manifest v2\n" + `{"a":"x` + "é" + `\n","b":1,"c":[true,null,{"x":-3,"y":2}]}`
	if string(a) != want {
		t.Errorf("signed bytes\n%q\nwant\n%q", a, want)
	}
	b, _ := SignedBytes([]byte(`{"c":[true,null,{"x":-3,"y":2}],"a":"x` + "é" + `\n","b":1}`))
	if !bytes.Equal(a, b) {
		t.Errorf("another layout signs other bytes:\n%q\n%q", a, b)
	}
	if c, _ := SignedBytes([]byte(`{"c":[true,null,{"x":-3,"y":2}],"a":"x` + "é" + `\n","b":1,"extra":0}`)); bytes.Equal(a, c) {
		t.Error("an unknown member is not covered")
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":1.5}`, `{"a":1e3}`, `{"a":1} {}`, `[1]`, "{\"a\":\"\xff\"}", `{"a":-0}`} {
		if _, err := SignedBytes([]byte(bad)); err == nil {
			t.Errorf("%s: has a canonical form", bad)
		}
	}
}

// FuzzSignedBytes: canonicalizing untrusted manifests never crashes, and
// the canonical form is a fixed point.
func FuzzSignedBytes(f *testing.F) {
	f.Add([]byte(`{"version":2,"files":[{"name":"a","bytes":12}],"signature":"x"}`))
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"\u0001"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := canonicalJSON(b, "")
		if err != nil {
			return
		}
		again, err := canonicalJSON(c, "")
		if err != nil || !bytes.Equal(c, again) {
			t.Fatalf("not a fixed point: %q → %q (%v)", c, again, err)
		}
	})
}
