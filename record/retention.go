package record

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Prune deletes the finished recording sessions that ended before
// now − keep: their files and manifest, with a recording_deleted audit
// event each, on the node's disk and, with a Store, in the store.
// Sessions still recording are never touched. It returns how many
// sessions it deleted (a session on disk and in the store counts twice).
func (r *Recorder) Prune(ctx context.Context, now time.Time, keep time.Duration) (int, error) {
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
			if !safeName(f.Name) {
				continue // a name a manifest must not have: nothing outside its directory goes
			}
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
		r.deleted(m, keep, "disk")
	}
	if r.cfg.Store != nil {
		n, err := r.pruneStore(ctx, cutoff, keep)
		deleted += n
		errs = append(errs, err)
	}
	return deleted, errors.Join(errs...)
}

// pruneStore is Prune in the store: the files first, the manifest last,
// so a manifest is never gone while its files remain.
func (r *Recorder) pruneStore(ctx context.Context, cutoff time.Time, keep time.Duration) (int, error) {
	names, err := r.cfg.Store.List(ctx, "")
	if err != nil {
		return 0, err
	}
	deleted := 0
	var errs []error
	for _, name := range names {
		if !strings.HasSuffix(name, ManifestSuffix) {
			continue
		}
		m, err := r.readStored(ctx, name)
		if err != nil || m.Ended.IsZero() || !m.Ended.Before(cutoff) {
			continue
		}
		dir := path.Dir(name)
		failed := false
		for _, f := range m.Files {
			if !safeName(f.Name) {
				continue
			}
			if err := r.cfg.Store.Delete(ctx, dir+"/"+f.Name); err != nil {
				errs = append(errs, err)
				failed = true
			}
		}
		if failed {
			continue
		}
		if err := r.cfg.Store.Delete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
		r.deleted(m, keep, "store")
	}
	return deleted, errors.Join(errs...)
}

func (r *Recorder) deleted(m *Manifest, keep time.Duration, where string) {
	r.unindex(m)
	r.log.Info("recording deleted by retention", "room", m.Room, "identity", m.Identity, "session", m.Session, "ended", m.Ended, "from", where)
	r.cfg.Events(m.Room, EventDeleted, m.Identity, map[string]any{
		"session": m.Session, "files": len(m.Files), "ended": m.Ended, "retention_hours": keep.Hours(), "from": where})
}

// KeepFor runs Prune every interval until ctx ends.
func (r *Recorder) KeepFor(ctx context.Context, keep, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Prune(ctx, time.Now(), keep); err != nil {
			r.log.Warn("retention could not delete every expired recording", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
