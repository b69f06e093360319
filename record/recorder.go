package record

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/sfu"
)

// Audit event kinds the recorder reports (docs/protocol.md, "Audit events over HTTP").
const (
	EventStarted = "recording_started"
	EventStopped = "recording_stopped"
	EventGap     = "recording_gap"
	// EventDeleted is a recording removed by the retention setting.
	EventDeleted = "recording_deleted"
)

// Defaults.
const (
	DefaultSegment = 10 * time.Minute
	// queuePackets bounds a student's queue between the taps and the
	// writer: ~2 s of a camera, microphone and screen together.
	queuePackets = 512
	// jitterDelay is how long the jitter buffer waits for a missing
	// packet (a retransmission) before giving the frame up.
	jitterDelay = 300 * time.Millisecond
)

// Source is a published track the recorder can tap; *sfu.Track is one.
type Source interface {
	ID() string
	Kind() sfu.Kind
	Codec() sfu.Codec
	// Source says what the track carries: camera, microphone or screen.
	Source() string
	// Tap feeds w one continuous RTP stream of the track at quality q
	// from the track's reader goroutines; stop detaches it.
	Tap(w sfu.RTPWriter, q int) (stop func())
	RequestKeyframe(q int)
	// Done is closed when the track ends.
	Done() <-chan struct{}
}

// EventSink records an audit event in room and returns its sequence
// number (0 if it could not be recorded).
type EventSink func(room, kind, subject string, details map[string]any) int64

// Config sets up a Recorder.
type Config struct {
	// Dir is the recordings directory: <Dir>/<room>/<identity>/.
	Dir string
	// Segment is the length of one file; a new one starts on the next
	// keyframe after it. 0 means DefaultSegment.
	Segment time.Duration
	// Signer signs manifests (Ed25519). Required.
	Signer *Signer
	// Store, when set, is where finished files and manifests go: each
	// file as it closes, the manifest after the session's files, the
	// local copy removed once the stored copy is verified. Nil keeps
	// recordings in Dir. The Recorder closes it (when it is an
	// io.Closer) in Close.
	Store Store
	// UploadDrain is how long Close waits for queued uploads
	// (DefaultUploadDrain when 0).
	UploadDrain time.Duration
	// Quality is the layer tapped (sfu.QualityHigh).
	Quality int
	// NodeID goes into manifests, and names this node in the Index.
	NodeID string
	// Index, in a cluster, says which node or the store holds each
	// session, so that any node lists the room's sessions; nil for a
	// node alone.
	Index Index
	// Forward serves a request for a file another node holds at that
	// node; nil answers not_found for it.
	Forward Forwarder
	Events  EventSink
	// Logger receives the package's lines; nil discards them.
	Logger *slog.Logger
}

// Stats are the recorder's counters since it started.
type Stats struct {
	Active   int    // students being recorded now
	Bytes    uint64 // bytes written to recording files
	Failures uint64 // student recordings stopped by an error
	Dropped  uint64 // packets dropped because a writer fell behind
	// With a Store:
	Uploaded       uint64 // files and manifests stored and verified
	UploadedBytes  uint64
	UploadFailures uint64 // failed attempts (each is retried)
	UploadPending  int    // files waiting for the store
	Queued         int    // packets waiting for the writers now
}

// Recorder records students' tracks. It is safe for concurrent use.
type Recorder struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	students map[string]*student // by room + "/" + identity
	closed   bool
	wg       sync.WaitGroup

	up *uploader // nil without a Store
	ix *indexer  // nil without an Index

	bytes, failures, dropped atomic.Uint64
}

// New checks cfg and makes the recordings directory.
func New(cfg Config) (*Recorder, error) {
	if cfg.Dir == "" {
		return nil, errors.New("record: Config.Dir is required")
	}
	if cfg.Signer == nil {
		return nil, errors.New("record: Config.Signer is required to sign manifests")
	}
	if cfg.UploadDrain <= 0 {
		cfg.UploadDrain = DefaultUploadDrain
	}
	if cfg.Segment <= 0 {
		cfg.Segment = DefaultSegment
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Events == nil {
		cfg.Events = func(string, string, string, map[string]any) int64 { return 0 }
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	r := &Recorder{cfg: cfg, log: cfg.Logger.With("component", "record"), students: map[string]*student{}}
	if cfg.Index != nil {
		r.ix = newIndexer(cfg.Index, r.log, r.rescanDisk)
	}
	if cfg.Store != nil {
		r.up = newUploader(r, cfg.Store, r.log.With("store", fmt.Sprintf("%T", cfg.Store)))
		r.resume()
	}
	return r, nil
}

// Record starts recording src for the student identity in room, until
// src ends or the Recorder closes. Tracks of one student share a writer
// and a manifest. Codecs other than VP8 video and Opus audio are not
// recorded (an event says so).
func (r *Recorder) Record(room, identity string, src Source) {
	if !safeName(room) || !safeName(identity) {
		r.log.Warn("not recording: room or identity unusable as a directory name", "room", room, "identity", identity)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	key := room + "/" + identity
	if st := r.students[key]; st != nil && st.add(src) {
		return
	}
	// No session, or it ended while src was offered: a new one, with
	// its own manifest.
	st, err := newStudent(r, room, identity)
	if err != nil {
		r.failures.Add(1)
		r.log.Error("recording not started", "room", room, "identity", identity, "err", err)
		r.cfg.Events(room, EventStopped, identity, map[string]any{"reason": "write_failed", "error": err.Error()})
		return
	}
	r.students[key] = st
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		st.run()
		r.mu.Lock()
		if r.students[key] == st {
			delete(r.students, key)
		}
		r.mu.Unlock()
	}()
	st.add(src)
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	active, queued := len(r.students), 0
	for _, st := range r.students {
		queued += len(st.queue)
	}
	r.mu.Unlock()
	s := Stats{Active: active, Bytes: r.bytes.Load(), Failures: r.failures.Load(), Dropped: r.dropped.Load(), Queued: queued}
	if r.up != nil {
		s.Uploaded, s.UploadedBytes = r.up.uploaded.Load(), r.up.uploadedBytes.Load()
		s.UploadFailures, s.UploadPending = r.up.failures.Load(), r.up.pending()
	}
	return s
}

// Close stops every recording, finishing files and manifests, and
// waits up to Config.UploadDrain for the store to take them.
func (r *Recorder) Close() error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	for _, st := range r.students {
		st.stop("server_shutdown")
	}
	r.mu.Unlock()
	r.wg.Wait()
	if r.up != nil && !already {
		r.up.close(r.cfg.UploadDrain)
	}
	if r.ix != nil && !already {
		r.ix.close()
	}
	if c, ok := r.cfg.Store.(io.Closer); ok && !already {
		return c.Close()
	}
	return nil
}

// studentDir is where a student's files and manifest go.
func (r *Recorder) studentDir(room, identity string) string {
	return filepath.Join(r.cfg.Dir, room, identity)
}

// safeName reports whether s can be a single path element.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && filepath.Base(s) == s && len(s) <= 255
}

// PublicKeys is the keyring that verifies this node's manifests, current
// and retired keys (for GET /v1/recordings/keys: Keyring.JSON).
func (r *Recorder) PublicKeys() *Keyring { return r.cfg.Signer.PublicKeys() }
