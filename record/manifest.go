package record

import (
	"crypto/hmac"
	"crypto/sha256"
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
// order, the gaps, and an HMAC-SHA256 over all of it, so a reviewer can
// tell whether a file or the manifest was altered.
type Manifest struct {
	Version  int       `json:"version"`
	Room     string    `json:"room"`
	Identity string    `json:"identity"`
	Node     string    `json:"node,omitempty"`
	Session  string    `json:"session"` // names the files: <session>-<source>-<n>.webm
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"` // zero while recording
	// StopReason says why recording ended: tracks_ended, write_failed,
	// server_shutdown.
	StopReason string `json:"stop_reason,omitempty"`
	Files      []File `json:"files"`
	Gaps       []Gap  `json:"gaps"`
	Signature  string `json:"signature"` // hex HMAC-SHA256 of the manifest with this field empty
	Dir        string `json:"-"`
}

// File is one finished segment.
type File struct {
	Name   string      `json:"name"`
	Source string      `json:"source"` // camera (with microphone) or screen
	SHA256 string      `json:"sha256"`
	Bytes  int64       `json:"bytes"`
	Start  time.Time   `json:"start"`
	End    time.Time   `json:"end"`
	Tracks []TrackInfo `json:"tracks"`
}

// TrackInfo is a file's track's codec parameters.
type TrackInfo struct {
	Kind      string `json:"kind"` // video or audio
	Codec     string `json:"codec"`
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

// sign sets m.Signature.
func (m *Manifest) sign(key []byte) {
	m.Signature = ""
	m.Signature = hex.EncodeToString(m.mac(key))
}

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

// Verify checks m's signature with key and, when dir is not empty, each
// file's SHA-256 and size in dir.
func Verify(m *Manifest, key []byte, dir string) error {
	got, err := hex.DecodeString(m.Signature)
	if err != nil || !hmac.Equal(got, m.mac(key)) {
		return fmt.Errorf("%w: manifest signature does not match", ErrTampered)
	}
	if dir == "" {
		return nil
	}
	for _, f := range m.Files {
		sum, n, err := hashFile(filepath.Join(dir, f.Name))
		if err != nil {
			return fmt.Errorf("record: %s: %w", f.Name, err)
		}
		if sum != f.SHA256 || n != f.Bytes {
			return fmt.Errorf("%w: %s does not match its SHA-256", ErrTampered, f.Name)
		}
	}
	return nil
}

// write stores m signed, atomically (temporary file, fsync, rename).
func (m *Manifest) write(key []byte) error {
	m.sign(key)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(m.Dir, m.Session+ManifestSuffix)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
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

// List returns the manifests of room, oldest first by start.
func (r *Recorder) List(room string) ([]*Manifest, error) {
	if !safeName(room) {
		return nil, fmt.Errorf("record: bad room name %q", room)
	}
	paths, err := filepath.Glob(filepath.Join(r.cfg.Dir, room, "*", "*"+ManifestSuffix))
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, p := range paths {
		m, err := ReadManifest(p)
		if err != nil {
			r.log.Warn("unreadable manifest", "path", p, "err", err)
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Manifest) int {
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.Identity, b.Identity)
	})
	return out, nil
}
