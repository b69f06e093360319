package roomapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// FileStore is the Store of a node alone: the markers and revocations in
// memory, and in one JSON file rewritten on every change (written to a
// temporary file, fsynced, renamed over the old one, the directory
// fsynced), so a crash leaves the old state or the new, never a mix.
// Changes are admin calls, a handful per exam: rewriting the whole file
// costs nothing that matters.
type FileStore struct {
	path string

	// mu guards state and the file.
	mu    sync.Mutex
	state fileState
}

// fileState is the file's content.
type fileState struct {
	Ended       map[string]time.Time `json:"ended"`
	Revocations []Revocation         `json:"revocations"`
}

var _ Store = (*FileStore)(nil)

// NewFileStore opens (or starts) the store at path, a file in the data
// dir.
func NewFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, state: fileState{Ended: map[string]time.Time{}}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("roomapi: %w", err)
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("roomapi: %w", err)
	}
	if err := json.Unmarshal(b, &s.state); err != nil {
		return nil, fmt.Errorf("roomapi: %s is not a lockout file: %w", path, err)
	}
	if s.state.Ended == nil {
		s.state.Ended = map[string]time.Time{}
	}
	return s, nil
}

// MarkEnded implements Store.
func (s *FileStore) MarkEnded(_ context.Context, room string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(time.Now())
	s.state.Ended[room] = at.UTC().Truncate(time.Second)
	return s.saveLocked()
}

// Ended implements Store.
func (s *FileStore) Ended(_ context.Context, room string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.state.Ended[room]
	if !at.IsZero() && time.Since(at) > MarkTTL {
		return time.Time{}, nil
	}
	return at, nil
}

// Revoke implements Store.
func (s *FileStore) Revoke(_ context.Context, r Revocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(time.Now())
	s.state.Revocations = slices.DeleteFunc(s.state.Revocations, func(o Revocation) bool {
		return o.Identity == r.Identity && o.Room == r.Room
	})
	s.state.Revocations = append(s.state.Revocations, r)
	return s.saveLocked()
}

// Lift implements Store.
func (s *FileStore) Lift(_ context.Context, identity, room string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneLocked(time.Now())
	n := len(s.state.Revocations)
	s.state.Revocations = slices.DeleteFunc(s.state.Revocations, func(o Revocation) bool {
		return o.Identity == identity && o.Room == room
	})
	if len(s.state.Revocations) == n {
		return ErrNoRevocation
	}
	return s.saveLocked()
}

// Revocations implements Store.
func (s *FileStore) Revocations(context.Context) ([]Revocation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	out := []Revocation{}
	for _, r := range s.state.Revocations {
		if now.Before(r.Until) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Revoked implements Store.
func (s *FileStore) Revoked(_ context.Context, room, identity string) (Revocation, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, r := range s.state.Revocations {
		if r.covers(room, identity, now) {
			return r, true, nil
		}
	}
	return Revocation{}, false, nil
}

// pruneLocked forgets expired revocations and markers past MarkTTL.
func (s *FileStore) pruneLocked(now time.Time) {
	s.state.Revocations = slices.DeleteFunc(s.state.Revocations, func(r Revocation) bool { return !now.Before(r.Until) })
	for room, at := range s.state.Ended {
		if now.Sub(at) > MarkTTL {
			delete(s.state.Ended, room)
		}
	}
}

// saveLocked writes the state durably (see FileStore).
func (s *FileStore) saveLocked() error {
	b, err := json.MarshalIndent(s.state, "", "  ")
	if err != nil {
		return fmt.Errorf("roomapi: %w", err)
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, ".lockouts-*")
	if err != nil {
		return fmt.Errorf("roomapi: %w", err)
	}
	defer os.Remove(tmp.Name()) // gone already once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("roomapi: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("roomapi: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("roomapi: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("roomapi: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("roomapi: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("roomapi: fsync %s: %w", dir, err)
	}
	return nil
}
