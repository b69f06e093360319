package record

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"
)

// Prune deletes the finished recording sessions that ended before
// now − keep: their files and manifest, with a recording_deleted audit
// event each. Sessions still recording are never touched. It returns how
// many sessions it deleted.
func (r *Recorder) Prune(now time.Time, keep time.Duration) (int, error) {
	paths, err := filepath.Glob(filepath.Join(r.cfg.Dir, "*", "*", "*"+ManifestSuffix))
	if err != nil {
		return 0, err
	}
	cutoff := now.Add(-keep)
	deleted := 0
	var errs []error
	for _, p := range paths {
		m, err := ReadManifest(p)
		if err != nil || m.Ended.IsZero() || !m.Ended.Before(cutoff) {
			continue
		}
		for _, f := range m.Files {
			if err := os.Remove(filepath.Join(m.Dir, f.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		os.Remove(m.Dir) // only if now empty
		deleted++
		r.log.Info("recording deleted by retention", "room", m.Room, "identity", m.Identity, "session", m.Session, "ended", m.Ended)
		r.cfg.Events(m.Room, EventDeleted, m.Identity, map[string]any{
			"session": m.Session, "files": len(m.Files), "ended": m.Ended, "retention_hours": keep.Hours()})
	}
	return deleted, errors.Join(errs...)
}

// KeepFor runs Prune every interval until ctx ends.
func (r *Recorder) KeepFor(ctx context.Context, keep, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Prune(time.Now(), keep); err != nil {
			r.log.Warn("retention could not delete every expired recording", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
