package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// recordFlags are serve's recording settings (docs/recording.md).
type recordFlags struct {
	all           bool
	segment       time.Duration
	key           string
	retentionDays int
}

func (f *recordFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.all, "record", false, "record every room's students (else only students whose token has \"record\": true)")
	fs.DurationVar(&f.segment, "recording-segment", record.DefaultSegment, "length of one recording file; the next starts on a keyframe")
	fs.StringVar(&f.key, "recording-key", "", "HMAC key that signs recording manifests, at least 32 bytes (default: derived from the API secret)")
	fs.IntVar(&f.retentionDays, "recording-retention", 0, "delete recordings that ended more than this many days ago (0: keep)")
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
	return nil
}

// manifestKey is --recording-key, or a key derived from the API secret
// so that manifests are signed out of the box but never with the token
// key itself.
func (f *recordFlags) manifestKey(apiSecret string) []byte {
	if f.key != "" {
		return []byte(f.key)
	}
	h := hmac.New(sha256.New, []byte(apiSecret))
	h.Write([]byte("invigil recording manifests v1"))
	return h.Sum(nil)
}

// newRecorder makes the recorder. Its events go through rooms, so the
// room's proctors see them live.
func newRecorder(cfg serveConfig, rooms *room.Rooms, log *slog.Logger) (*record.Recorder, error) {
	return record.New(record.Config{
		Dir:     filepath.Join(cfg.dataDir, "recordings"),
		Segment: cfg.rec.segment,
		Key:     cfg.rec.manifestKey(cfg.apiSecret),
		Quality: sfu.QualityHigh,
		NodeID:  cfg.nodeID,
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
