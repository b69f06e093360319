package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/invigil/invigil/record"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
	"github.com/invigil/invigil/signaling"
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

// startRecorder makes the recorder and, with a retention, its pruning
// loop. rooms is read when an event is recorded, so it may be set after.
func startRecorder(ctx context.Context, cfg serveConfig, rooms **room.Rooms, log *slog.Logger) (*record.Recorder, error) {
	rec, err := record.New(record.Config{
		Dir:     filepath.Join(cfg.dataDir, "recordings"),
		Segment: cfg.rec.segment,
		Key:     cfg.rec.manifestKey(cfg.apiSecret),
		Quality: sfu.QualityHigh,
		NodeID:  cfg.nodeID,
		Events: func(roomName, kind, subject string, details map[string]any) int64 {
			return (*rooms).Record(roomName, kind, "", subject, details)
		},
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	if cfg.rec.retentionDays > 0 {
		go rec.KeepFor(ctx, time.Duration(cfg.rec.retentionDays)*24*time.Hour, time.Hour)
	}
	return rec, nil
}

// onPublish records a student's track when the node records every room
// or the student's token asked for it.
func onPublish(all bool, rec *record.Recorder) func(string, *room.Participant, *sfu.Track) {
	return func(roomName string, p *room.Participant, t *sfu.Track) {
		if all || p.Record {
			// A second device is recorded on its own, as identity@device.
			name := p.Identity
			if p.Device != "" {
				name += "@" + p.Device
			}
			rec.Record(roomName, name, t)
		}
	}
}

// recordingsHandler serves GET /v1/rooms/{room}/recordings to admins:
// the room's manifests, oldest first.
func recordingsHandler(secret []byte, rec *record.Recorder) http.Handler {
	return signaling.RequireAdmin(secret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, err := rec.List(r.PathValue("room"))
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "bad_request", "message": err.Error()}})
			return
		}
		if ms == nil {
			ms = []*record.Manifest{}
		}
		json.NewEncoder(w).Encode(map[string]any{"recordings": ms})
	}))
}
