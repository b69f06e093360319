package record

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Manifest describes one recording session of one student: the files in
// order, the gaps, and a signature over all of it, so a reviewer can
// tell whether a file or the manifest was altered.
//
// Version 2 manifests are signed with the node's Ed25519 key (KeyID);
// version 1 manifests, written before, carry an HMAC-SHA256 and still
// verify with the HMAC key (Trust.HMACKey).
type Manifest struct {
	Version  int       `json:"version"`
	Room     string    `json:"room"`
	Identity string    `json:"identity"`
	Node     string    `json:"node,omitempty"`
	Session  string    `json:"session"` // names the files: <session>-<source>-<n>.webm or .mp4
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"` // zero while recording
	// StopReason says why recording ended: tracks_ended, write_failed,
	// server_shutdown, interrupted.
	StopReason string `json:"stop_reason,omitempty"`
	Files      []File `json:"files"`
	Gaps       []Gap  `json:"gaps"`
	// KeyID names the public key that verifies Signature (version 2).
	KeyID string `json:"key_id,omitempty"`
	// Signature is, in version 2, the standard base64 of the Ed25519
	// signature of SignedBytes; in version 1, the hex HMAC-SHA256 of
	// the manifest's JSON with this field empty.
	Signature string `json:"signature"`
	Dir       string `json:"-"`
	// held names the node that holds a session another node recorded
	// (from the Index); empty when this node's disk or store has it.
	held string
}

// File is one finished segment.
type File struct {
	Name   string `json:"name"`
	Source string `json:"source"` // camera (with microphone) or screen
	// Type is the file's media type: video/webm or video/mp4 (empty in
	// version 1, where every file was WebM).
	Type   string      `json:"type,omitempty"`
	SHA256 string      `json:"sha256"`
	Bytes  int64       `json:"bytes"`
	Start  time.Time   `json:"start"`
	End    time.Time   `json:"end"`
	Tracks []TrackInfo `json:"tracks"`
}

// TrackInfo is a file's track's codec parameters.
type TrackInfo struct {
	Kind      string `json:"kind"`  // video or audio
	Codec     string `json:"codec"` // VP8, H264, Opus
	ClockRate int    `json:"clock_rate"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Channels  int    `json:"channels,omitempty"`
}

// Gap is a stretch of a source that is missing from the files.
type Gap struct {
	Source string    `json:"source"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// Reason: packet_loss (frames lost and not retransmitted in time;
	// video resumes at the next keyframe), queue_full (the writer fell
	// behind), stall (the publisher sent nothing).
	Reason string `json:"reason"`
	// EventSeq is the recording_gap audit event's sequence number.
	EventSeq int64 `json:"event_seq,omitempty"`
}

// ManifestSuffix ends a manifest's file name: <session>.manifest.json.
const ManifestSuffix = ".manifest.json"

// ManifestVersion is the version the recorder writes: Ed25519-signed.
const ManifestVersion = 2

// signingContext starts the bytes a version-2 signature covers, so that
// a signature over a manifest can never be taken for one over anything
// else the key might sign.
const signingContext = "invigil recording manifest v2\n"

// SignedBytes is what a version-2 manifest's signature covers: the
// ASCII line "invigil recording manifest v2" and a newline, then the
// RFC 8785 canonical JSON of the manifest object as stored, without its
// top-level "signature" member. Every other member is covered, those
// this version of the package does not know included.
func SignedBytes(raw []byte) ([]byte, error) {
	c, err := canonicalJSON(raw, "signature")
	if err != nil {
		return nil, err
	}
	return append([]byte(signingContext), c...), nil
}

// sign sets m's key ID and signature.
func (m *Manifest) sign(s *Signer) error {
	m.Version, m.KeyID, m.Signature = ManifestVersion, s.KeyID(), ""
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	msg, err := SignedBytes(raw)
	if err != nil {
		return err
	}
	m.Signature = base64.StdEncoding.EncodeToString(s.sign(msg))
	return nil
}

// mac is a version-1 manifest's HMAC: over Go's encoding of the
// manifest with the signature empty (fields in struct order; every field
// added since version 1 is omitted when empty, so the encoding of a
// version-1 manifest is unchanged).
func (m *Manifest) mac(key []byte) []byte {
	c := *m
	c.Signature = ""
	b, _ := json.Marshal(&c) // fixed field order: deterministic
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil)
}

// ErrTampered is returned by Verify when the manifest or a file does not
// match its signature or hash.
var ErrTampered = errors.New("record: recording altered")

// ErrUntrusted is a manifest signed with a key the verifier does not
// trust (or no key it was given).
var ErrUntrusted = errors.New("record: manifest signed with a key that is not trusted")

// Trust is what a verifier trusts: public keys it got from somewhere
// other than the manifest (a keyring file, the keys endpoint), and for
// version-1 manifests the HMAC key.
type Trust struct {
	Keys    *Keyring
	HMACKey []byte
}

// VerifySignature checks the signature of the manifest whose stored
// bytes are raw and returns it parsed. A version-2 manifest names its
// key by ID; the key must be in trust.Keys and the signature must verify
// with it; a key retired before the session started (a retired key
// signs nothing new) is refused too. Nothing in the manifest is trusted
// to choose or supply a key.
func VerifySignature(raw []byte, trust Trust) (*Manifest, error) {
	m := &Manifest{}
	if err := json.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("record: manifest: %w", err)
	}
	switch m.Version {
	case 1:
		return m, m.verifyMAC(trust.HMACKey)
	case ManifestVersion:
		msg, err := SignedBytes(raw)
		if err != nil {
			return m, fmt.Errorf("%w: %v", ErrTampered, err)
		}
		return m, m.verifyEd25519(msg, trust.Keys)
	}
	return m, fmt.Errorf("record: manifest version %d is not known", m.Version)
}

func (m *Manifest) verifyMAC(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: a version-1 manifest needs the HMAC key", ErrUntrusted)
	}
	got, err := hex.DecodeString(m.Signature)
	if err != nil || !hmac.Equal(got, m.mac(key)) {
		return fmt.Errorf("%w: manifest HMAC does not match", ErrTampered)
	}
	return nil
}

func (m *Manifest) verifyEd25519(msg []byte, keys *Keyring) error {
	pk, ok := keys.Lookup(m.KeyID)
	if !ok {
		return fmt.Errorf("%w: key_id %q is not among the trusted keys", ErrUntrusted, m.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize || !ed25519.Verify(pk.Key, msg, sig) {
		return fmt.Errorf("%w: manifest signature does not verify with key %s", ErrTampered, pk.ID)
	}
	if !pk.Retired.IsZero() && m.Started.After(pk.Retired) {
		return fmt.Errorf("%w: key %s was retired at %s, before this session started", ErrUntrusted, pk.ID, pk.Retired.Format(time.RFC3339))
	}
	return nil
}

// Verify checks m's signature (against m as this package encodes it:
// members it does not know are lost when m was parsed; VerifyFile
// checks the stored bytes) and, when dir is not empty, each file's
// SHA-256 and size in dir. It returns the first problem; CheckFiles
// lists them all.
func Verify(m *Manifest, trust Trust, dir string) error {
	switch m.Version {
	case 1:
		if err := m.verifyMAC(trust.HMACKey); err != nil {
			return err
		}
	case ManifestVersion:
		raw, err := json.Marshal(m)
		if err != nil {
			return err
		}
		msg, err := SignedBytes(raw)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTampered, err)
		}
		if err := m.verifyEd25519(msg, trust.Keys); err != nil {
			return err
		}
	default:
		return fmt.Errorf("record: manifest version %d is not known", m.Version)
	}
	if dir == "" {
		return nil
	}
	if problems := CheckFiles(m, dir); len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrTampered, problems[0])
	}
	return nil
}

// VerifyFile checks the manifest at path, its signature over the bytes
// stored, and every file it lists in the manifest's directory. It
// returns the manifest (nil if it could not be parsed) and one line per
// problem; none means intact.
func VerifyFile(path string, trust Trust) (*Manifest, []string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, []string{err.Error()}
	}
	m, err := VerifySignature(raw, trust)
	if m == nil {
		return nil, []string{err.Error()}
	}
	m.Dir = filepath.Dir(path)
	var problems []string
	if err != nil {
		problems = append(problems, strings.TrimPrefix(err.Error(), "record: "))
	}
	return m, append(problems, CheckFiles(m, m.Dir)...)
}

// CheckFiles compares every file m lists with the file of that name in
// dir: present, the size, the SHA-256. One line per difference.
func CheckFiles(m *Manifest, dir string) []string {
	var problems []string
	for _, f := range m.Files {
		if !safeName(f.Name) {
			problems = append(problems, fmt.Sprintf("%q: not a file name", f.Name))
			continue
		}
		sum, n, err := hashFile(filepath.Join(dir, f.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			problems = append(problems, fmt.Sprintf("%s: missing", f.Name))
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: %v", f.Name, err))
		case n != f.Bytes:
			problems = append(problems, fmt.Sprintf("%s: %d bytes, the manifest says %d", f.Name, n, f.Bytes))
		case sum != f.SHA256:
			problems = append(problems, fmt.Sprintf("%s: SHA-256 %s, the manifest says %s", f.Name, sum, f.SHA256))
		}
	}
	return problems
}

// write stores m signed, atomically (temporary file, fsync, rename).
func (m *Manifest) write(s *Signer) error {
	if err := m.sign(s); err != nil {
		return err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(m.Dir, m.Session+ManifestSuffix), append(b, '\n'), 0o640)
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ReadManifest reads one manifest file.
func ReadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("record: %s: %w", path, err)
	}
	m.Dir = filepath.Dir(path)
	return m, nil
}

// List returns the manifests of room, oldest first by start: those on
// the node's disk (sessions recording, or waiting for the store), with
// a Store those stored, and with an Index those other nodes hold. A
// session in several is listed once, from disk, else from the store. A
// manifest not on this node's disk has an empty Dir.
func (r *Recorder) List(ctx context.Context, room string) ([]*Manifest, error) {
	if !safeName(room) {
		return nil, fmt.Errorf("record: bad room name %q", room)
	}
	paths, err := filepath.Glob(filepath.Join(r.cfg.Dir, room, "*", "*"+ManifestSuffix))
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	local := map[string]bool{}
	for _, p := range paths {
		m, err := ReadManifest(p)
		if err != nil {
			r.log.Warn("unreadable manifest", "path", p, "err", err)
			continue
		}
		local[storeName(room, filepath.Base(m.Dir), m.Session+ManifestSuffix)] = true
		out = append(out, m)
	}
	if r.cfg.Store != nil {
		names, err := r.cfg.Store.List(ctx, room+"/")
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			if !strings.HasSuffix(name, ManifestSuffix) || local[name] {
				continue
			}
			m, err := r.readStored(ctx, name)
			if err != nil {
				r.log.Warn("unreadable stored manifest", "name", name, "err", err)
				continue
			}
			out = append(out, m)
		}
	}
	have := map[string]bool{}
	for _, m := range out {
		have[indexKey(m)] = true
	}
	more, err := r.indexed(ctx, room, have)
	if err != nil {
		return nil, err
	}
	out = append(out, more...)
	slices.SortFunc(out, func(a, b *Manifest) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Identity, b.Identity)
	})
	return out, nil
}

// maxManifestBytes bounds a manifest read from a store: a 10-minute
// segment's entry is ~400 bytes, so this is days of recording.
const maxManifestBytes = 16 << 20

// readStored reads a manifest from the store.
func (r *Recorder) readStored(ctx context.Context, name string) (*Manifest, error) {
	rc, err := r.cfg.Store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestBytes))
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("record: %s: %w", name, err)
	}
	return m, nil
}

// Open returns one file of a recording: room, the student's directory
// name (identity, or identity@device) and the file's name, from the
// node's disk or else the store. It seeks, for HTTP range requests.
func (r *Recorder) Open(ctx context.Context, room, dir, file string) (io.ReadSeekCloser, error) {
	if !safeName(room) || !safeName(dir) || !safeName(file) {
		return nil, fmt.Errorf("record: bad name %q/%q/%q", room, dir, file)
	}
	f, err := os.Open(filepath.Join(r.cfg.Dir, room, dir, file))
	if err == nil || !errors.Is(err, os.ErrNotExist) || r.cfg.Store == nil {
		return f, err
	}
	rc, err := r.cfg.Store.Get(ctx, storeName(room, dir, file))
	if err != nil {
		return nil, err
	}
	rs, ok := rc.(io.ReadSeekCloser)
	if !ok {
		rc.Close()
		return nil, fmt.Errorf("record: the store's %T does not seek", rc)
	}
	return rs, nil
}
