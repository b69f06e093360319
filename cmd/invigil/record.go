package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/roomapi"
	"github.com/invigil/invigil/sfu"
)

// recordFlags are serve's recording settings (docs/recording.md).
type recordFlags struct {
	all           bool
	segment       time.Duration
	key           string
	retentionDays int
	signingKey    string
	rotateKey     bool
	store         string
	s3Endpoint    string
	s3AccessKey   string
	s3SecretKey   string
	s3Region      string
	s3Insecure    bool
}

func (f *recordFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.all, "record", false, "record every room's students (else only students whose token has \"record\": true)")
	fs.DurationVar(&f.segment, "recording-segment", record.DefaultSegment, "length of one recording file; the next starts on a keyframe")
	fs.StringVar(&f.key, "recording-key", "", "HMAC key of version-1 manifests, made before Ed25519 signing; only `invigil verify` uses it (default: derived from the API secret)")
	fs.IntVar(&f.retentionDays, "recording-retention", 0, "delete recordings that ended more than this many days ago, on disk and in the store (0: keep)")
	fs.StringVar(&f.signingKey, "recording-signing-key", "", "PEM (PKCS #8) Ed25519 key that signs manifests (default: generated into <data-dir>/recording-keys)")
	fs.BoolVar(&f.rotateKey, "recording-rotate-key", false, "retire the generated manifest signing key and make a new one at start (old manifests still verify)")
	fs.StringVar(&f.store, "recording-store", "", "where finished recordings go: a directory, or s3://bucket/prefix (default: <data-dir>/recordings)")
	fs.StringVar(&f.s3Endpoint, "recording-s3-endpoint", "", "host[:port] of the S3-compatible API for an s3:// --recording-store")
	fs.StringVar(&f.s3AccessKey, "recording-s3-access-key", "", "S3 access key ID (empty: anonymous)")
	fs.StringVar(&f.s3SecretKey, "recording-s3-secret-key", "", "S3 secret access key (better set as INVIGIL_RECORDING_S3_SECRET_KEY)")
	fs.StringVar(&f.s3Region, "recording-s3-region", "", "S3 region (empty: asked of the endpoint)")
	fs.BoolVar(&f.s3Insecure, "recording-s3-insecure", false, "speak plain HTTP to the S3 endpoint (a store on loopback only)")
}

func (f *recordFlags) validate(dev bool) error {
	if f.segment < 5*time.Second {
		return fmt.Errorf("--recording-segment must be at least 5s")
	}
	if f.retentionDays < 0 {
		return fmt.Errorf("--recording-retention must not be negative")
	}
	if f.key != "" && len(f.key) < minSecretBytes && !dev {
		return fmt.Errorf("--recording-key must be at least %d bytes", minSecretBytes)
	}
	if f.rotateKey && f.signingKey != "" {
		return fmt.Errorf("--recording-rotate-key rotates the generated key; to rotate --recording-signing-key, give another key")
	}
	s3 := strings.HasPrefix(f.store, "s3://")
	if s3 {
		if _, _, err := record.ParseStoreURL(f.store); err != nil {
			return fmt.Errorf("--recording-store: %w", err)
		}
		if f.s3Endpoint == "" {
			return fmt.Errorf("--recording-store %s needs --recording-s3-endpoint", f.store)
		}
	} else if f.s3Endpoint != "" || f.s3AccessKey != "" || f.s3SecretKey != "" || f.s3Region != "" || f.s3Insecure {
		return fmt.Errorf("--recording-s3-* flags need an s3:// --recording-store")
	}
	return nil
}

// derivedManifestKey is the HMAC key version-1 manifests were signed with
// when no --recording-key was set: derived from the API secret, so that
// it could never mint tokens.
func derivedManifestKey(apiSecret string) []byte {
	h := hmac.New(sha256.New, []byte(apiSecret))
	h.Write([]byte("invigil recording manifests v1"))
	return h.Sum(nil)
}

// recordingStore is --recording-store: nil for the recordings directory
// itself (recordings stay where they are written).
func (f *recordFlags) recordingStore(recordings string) (record.Store, error) {
	if strings.HasPrefix(f.store, "s3://") {
		bucket, prefix, err := record.ParseStoreURL(f.store)
		if err != nil {
			return nil, err
		}
		return record.NewS3Store(record.S3Config{Endpoint: f.s3Endpoint, Insecure: f.s3Insecure, Bucket: bucket, Prefix: prefix,
			Region: f.s3Region, AccessKey: f.s3AccessKey, SecretKey: f.s3SecretKey})
	}
	if f.store == "" {
		return nil, nil
	}
	want, err := filepath.Abs(f.store)
	if err != nil {
		return nil, err
	}
	if have, err := filepath.Abs(recordings); err == nil && have == want {
		return nil, nil
	}
	return &record.DiskStore{Root: want}, nil
}

// newRecorder makes the recorder: its manifest signer (a key in the data
// dir, or --recording-signing-key) and store. Its events go through
// rooms, so the room's proctors see them live. In cluster mode index
// and forward (else nil) make its listing cluster-wide and send a
// request for a file another node holds to that node.
func newRecorder(cfg serveConfig, rooms *room.Rooms, index record.Index, forward record.Forwarder, log *slog.Logger) (*record.Recorder, error) {
	signer, err := record.OpenSigner(record.SignerConfig{
		Dir:     filepath.Join(cfg.dataDir, "recording-keys"),
		KeyFile: cfg.rec.signingKey,
		Rotate:  cfg.rec.rotateKey,
		Logger:  log,
	})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cfg.dataDir, "recordings")
	store, err := cfg.rec.recordingStore(dir)
	if err != nil {
		return nil, err
	}
	return record.New(record.Config{
		Dir:     dir,
		Segment: cfg.rec.segment,
		Signer:  signer,
		Store:   store,
		Quality: sfu.QualityHigh,
		NodeID:  cfg.nodeID,
		Index:   index,
		Forward: forward,
		Events: func(roomName, kind, subject string, details map[string]any) int64 {
			return rooms.Record(roomName, kind, "", subject, details)
		},
		Logger: log,
	})
}

// recordPolicy records a student's track when the node records every
// room or the student's token asked for it. Every track a room is given
// is the media engine's, which can be tapped.
func recordPolicy(all bool, rec *record.Recorder) room.PublishHook {
	return func(roomName string, p *room.Participant, t room.Track) {
		src, ok := t.(record.Source)
		if !ok || !(all || p.Record) {
			return
		}
		// A second device is recorded on its own, as identity@device.
		name := p.Identity
		if p.Device != "" {
			name += "@" + p.Device
		}
		rec.Record(roomName, name, src)
	}
}

var _ record.Source = (*sfu.Track)(nil)

// recordingIndex is the recorder's index of sessions in cluster mode:
// in the cluster's Redis, beside the trail; nil for a node alone.
func (n *node) recordingIndex() record.Index {
	if n.redis == nil {
		return nil
	}
	return audit.NewRecordingIndex(n.redis.Client(), n.redis.Prefix())
}

// recordingForward sends a request for a recording another node holds
// to that node, as the rooms API forwards a call about a room; a node
// that is not live is answered for (node_unreachable). Nil for a node
// alone.
func (n *node) recordingForward() record.Forwarder {
	if n.redis == nil {
		return nil
	}
	return func(w http.ResponseWriter, r *http.Request, nodeID string) bool {
		if r.Header.Get(roomapi.ForwardedHeader) != "" || nodeID == n.cfg.nodeID {
			return false
		}
		ctx, cancel := context.WithTimeout(r.Context(), recordingKeysTimeout)
		nodes, err := n.redis.Nodes(ctx)
		cancel()
		if err != nil {
			httpapi.Fail(w, httpapi.CodeUnavailable, "the cluster store (Redis) cannot say where node "+nodeID+" is; retry shortly")
			return true
		}
		for _, x := range nodes {
			if x.ID == nodeID {
				return n.roomAPI.Forward(w, r, roomapi.Node{ID: x.ID, URL: x.URL})
			}
		}
		httpapi.Fail(w, httpapi.CodeNodeUnreachable, "node "+nodeID+", which holds the recording, is not live (and the store does not have it)")
		return true
	}
}

// Recording keys in cluster mode (cluster/keys.go).
const (
	// recordingKeysTimeout bounds one read or write of the published keys.
	recordingKeysTimeout = 2 * time.Second
	// recordingKeysEvery is how often a node publishes its keys again: a
	// Redis that restarted empty has them back within it.
	recordingKeysEvery = time.Minute
	// recordingKeysRetry is the wait after a failed publication.
	recordingKeysRetry = 5 * time.Second
)

// publishRecordingKeys publishes this node's keyring (retired keys
// included) to the cluster until ctx ends: at start, then every
// recordingKeysEvery (recordingKeysRetry after a failure).
func (n *node) publishRecordingKeys(ctx context.Context) {
	if n.redis == nil {
		return
	}
	b, err := n.rec.PublicKeys().JSON()
	if err != nil {
		n.log.Error("recording keys not published", "err", err)
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, cancel := context.WithTimeout(ctx, recordingKeysTimeout)
		err := n.redis.PublishRecordingKeys(c, n.cfg.nodeID, b)
		cancel()
		if err != nil {
			n.log.Warn("recording keys not published; retrying", "retry_in", recordingKeysRetry, "err", err)
			t.Reset(recordingKeysRetry)
			continue
		}
		t.Reset(recordingKeysEvery)
	}
}

// recordingKeys is GET /v1/recordings/keys: the keys that verify this
// node's manifests, current and retired, and in cluster mode every
// node's that published them.
func (n *node) recordingKeys(r *http.Request) (*record.Keyring, error) {
	own := n.rec.PublicKeys()
	if n.redis == nil {
		return own, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), recordingKeysTimeout)
	defer cancel()
	published, err := n.redis.RecordingKeys(ctx)
	if err != nil {
		return nil, err
	}
	rings := []*record.Keyring{own}
	for node, b := range published {
		k, err := record.ParseKeyring(b)
		if err != nil {
			n.log.Warn("unreadable recording keys published", "node_id", node, "err", err)
			continue
		}
		rings = append(rings, k)
	}
	return record.MergeKeyrings(rings...), nil
}
