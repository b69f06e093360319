package record

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// AlgEd25519 names the only signature algorithm of version-2 manifests.
const AlgEd25519 = "Ed25519"

// Files of a node's key directory (SignerConfig.Dir).
const (
	// SigningKeyFile holds the node's current private key: PKCS #8 in
	// PEM ("PRIVATE KEY"), mode 0600.
	SigningKeyFile = "signing-key.pem"
	// KeyringFile holds every public key the node has signed with, the
	// current one and the retired ones, as Keyring JSON.
	KeyringFile = "keyring.json"
)

// PublicKey is one manifest-signing key as published: what a verifier
// needs, and when it signed.
type PublicKey struct {
	// ID is KeyID of the key: what a manifest's key_id names.
	ID  string `json:"id"`
	Alg string `json:"alg"`
	// Key is the 32-byte Ed25519 public key (RFC 8032 §5.1.5),
	// standard base64 in JSON.
	Key     []byte    `json:"public_key"`
	Created time.Time `json:"created"`
	// Retired is when the key stopped signing; zero while it signs.
	Retired time.Time `json:"retired,omitzero"`
}

// Keyring is a set of public keys that verify manifests: one node's
// (Signer.PublicKeys), a cluster's (MergeKeyrings), or what a reviewer
// trusts (ParseKeyring of a file or of GET /v1/recordings/keys).
type Keyring struct {
	Keys []PublicKey `json:"keys"`
}

// KeyID names an Ed25519 public key: the hex of the first 8 bytes of
// its SHA-256. It is an index, not a trust decision: a verifier looks
// the ID up among keys it already trusts and checks the signature with
// that key, so a colliding ID buys a forger nothing.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// JSON is the keyring as published: {"keys": [{"id", "alg",
// "public_key", "created", "retired"}]}, oldest first.
func (k *Keyring) JSON() ([]byte, error) {
	c := Keyring{Keys: slices.Clone(k.Keys)}
	if c.Keys == nil {
		c.Keys = []PublicKey{}
	}
	slices.SortStableFunc(c.Keys, func(a, b PublicKey) int { return a.Created.Compare(b.Created) })
	return json.MarshalIndent(&c, "", "  ")
}

// ParseKeyring reads keyring JSON, checking every key: Ed25519, 32
// bytes, and an ID that is the key's own.
func ParseKeyring(b []byte) (*Keyring, error) {
	k := &Keyring{}
	if err := json.Unmarshal(b, k); err != nil {
		return nil, fmt.Errorf("record: keyring: %w", err)
	}
	for _, pk := range k.Keys {
		if pk.Alg != AlgEd25519 {
			return nil, fmt.Errorf("record: keyring: key %q: algorithm %q, want %s", pk.ID, pk.Alg, AlgEd25519)
		}
		if len(pk.Key) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("record: keyring: key %q: %d bytes, want %d", pk.ID, len(pk.Key), ed25519.PublicKeySize)
		}
		if id := KeyID(pk.Key); id != pk.ID {
			return nil, fmt.Errorf("record: keyring: key %q: its public key's ID is %s", pk.ID, id)
		}
	}
	return k, nil
}

// Lookup returns the key with id.
func (k *Keyring) Lookup(id string) (PublicKey, bool) {
	if k == nil {
		return PublicKey{}, false
	}
	for _, pk := range k.Keys {
		if pk.ID == id {
			return pk, true
		}
	}
	return PublicKey{}, false
}

// MergeKeyrings is the union of keyrings, for publishing every node's
// keys as one. A key listed twice keeps its earliest Created and, when
// any copy is retired, its earliest Retired.
func MergeKeyrings(rings ...*Keyring) *Keyring {
	out := &Keyring{Keys: []PublicKey{}}
	index := map[string]int{}
	for _, r := range rings {
		if r == nil {
			continue
		}
		for _, pk := range r.Keys {
			i, ok := index[pk.ID]
			if !ok {
				index[pk.ID] = len(out.Keys)
				out.Keys = append(out.Keys, pk)
				continue
			}
			have := &out.Keys[i]
			if pk.Created.Before(have.Created) {
				have.Created = pk.Created
			}
			if !pk.Retired.IsZero() && (have.Retired.IsZero() || pk.Retired.Before(have.Retired)) {
				have.Retired = pk.Retired
			}
		}
	}
	slices.SortStableFunc(out.Keys, func(a, b PublicKey) int { return a.Created.Compare(b.Created) })
	return out
}

// SignerConfig says where a node's manifest-signing key comes from.
type SignerConfig struct {
	// Dir keeps the keyring and, unless KeyFile is set, the private key
	// (SigningKeyFile, KeyringFile). Required. It should not be under
	// the recordings directory: recordings are copied out, keys never.
	Dir string
	// KeyFile, when set, is a PKCS #8 PEM Ed25519 private key to sign
	// with instead of the generated one (e.g. from a secret store).
	KeyFile string
	// Rotate retires the current generated key and generates a new one.
	// Ignored with KeyFile: rotate a given key by giving another.
	Rotate bool
	// Now is the clock (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Signer signs manifests with a node's current Ed25519 key and knows
// every public key the node has used, so that manifests signed before
// a rotation still verify. It is immutable once opened.
type Signer struct {
	priv ed25519.PrivateKey
	id   string
	ring Keyring
}

// OpenSigner loads the node's signing key, or generates one on first
// start (mode 0600), and keeps the keyring beside it up to date: when
// the key in use is not the keyring's current one (first start, a
// rotation, another KeyFile), the previous current key is marked
// retired and the new one added. The keyring is written before a new
// private key, so a crash between the two leaves every key that could
// have signed in the keyring.
func OpenSigner(cfg SignerConfig) (*Signer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("record: SignerConfig.Dir is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		return nil, errors.New("record: SignerConfig.Logger is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("record: key directory: %w", err)
	}
	ringPath := filepath.Join(cfg.Dir, KeyringFile)
	ring := &Keyring{}
	if b, err := os.ReadFile(ringPath); err == nil {
		if ring, err = ParseKeyring(b); err != nil {
			return nil, fmt.Errorf("%w (%s)", err, ringPath)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("record: %w", err)
	}

	keyPath, generate := cfg.KeyFile, false
	if keyPath == "" {
		keyPath = filepath.Join(cfg.Dir, SigningKeyFile)
		_, err := os.Stat(keyPath)
		generate = cfg.Rotate || errors.Is(err, os.ErrNotExist)
	}
	var priv ed25519.PrivateKey
	if generate {
		_, p, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("record: generate signing key: %w", err)
		}
		priv = p
	} else {
		p, err := readPrivateKey(keyPath)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(keyPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
			cfg.Logger.Warn("manifest signing key is readable by others; chmod 600 it", "path", keyPath, "mode", fi.Mode().Perm().String())
		}
		priv = p
	}
	pub := priv.Public().(ed25519.PublicKey)
	s := &Signer{priv: priv, id: KeyID(pub)}

	now := cfg.Now().UTC()
	changed := false
	found := false
	for i := range ring.Keys {
		pk := &ring.Keys[i]
		switch {
		case pk.ID == s.id:
			found = true
			if !pk.Retired.IsZero() {
				pk.Retired, changed = time.Time{}, true // signing with it again
			}
		case pk.Retired.IsZero():
			pk.Retired, changed = now, true
			cfg.Logger.Info("manifest signing key retired", "key_id", pk.ID)
		}
	}
	if !found {
		ring.Keys = append(ring.Keys, PublicKey{ID: s.id, Alg: AlgEd25519, Key: pub, Created: now})
		changed = true
		cfg.Logger.Info("manifest signing key added", "key_id", s.id, "generated", generate)
	}
	if changed {
		b, err := ring.JSON()
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(ringPath, append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("record: keyring: %w", err)
		}
	}
	if generate {
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("record: signing key: %w", err)
		}
		if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, fmt.Errorf("record: signing key: %w", err)
		}
	}
	s.ring = Keyring{Keys: slices.Clone(ring.Keys)}
	return s, nil
}

// NewSigner signs with priv and publishes only its public key: for tests
// and for callers that keep keys elsewhere.
func NewSigner(priv ed25519.PrivateKey, created time.Time) *Signer {
	pub := priv.Public().(ed25519.PublicKey)
	id := KeyID(pub)
	return &Signer{priv: priv, id: id, ring: Keyring{Keys: []PublicKey{{ID: id, Alg: AlgEd25519, Key: pub, Created: created.UTC()}}}}
}

// KeyID is the ID of the key the signer signs with.
func (s *Signer) KeyID() string { return s.id }

// PublicKeys is the node's keyring: the current key and every retired
// one. The caller may keep or change the copy it gets.
func (s *Signer) PublicKeys() *Keyring {
	return &Keyring{Keys: slices.Clone(s.ring.Keys)}
}

// sign is the Ed25519 signature of msg (RFC 8032 §5.1.6).
func (s *Signer) sign(msg []byte) []byte { return ed25519.Sign(s.priv, msg) }

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("record: signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("record: signing key %s: not a PEM \"PRIVATE KEY\" (PKCS #8)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("record: signing key %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("record: signing key %s: %T, want an Ed25519 key", path, k)
	}
	return priv, nil
}

// writeFileAtomic writes path through a temporary file, fsync and rename,
// so a crash leaves the old content or the new, never a mix.
func writeFileAtomic(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil { // a stale temporary file keeps its mode
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
