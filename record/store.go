package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Store is where finished recordings go when they leave the node's disk:
// a directory elsewhere (DiskStore) or an S3-compatible bucket
// (S3Store). Names are slash-separated, <room>/<identity>/<file>, the
// layout of the recordings directory.
type Store interface {
	// Put copies the local file at local to name and returns once the
	// copy is known to be whole: size bytes whose SHA-256 (hex) is sum.
	// Only then may the local file go.
	Put(ctx context.Context, name, local string, size int64, sum string) error
	// Get opens name; a missing one is an error matching
	// os.ErrNotExist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// Delete removes name; a missing one is no error.
	Delete(ctx context.Context, name string) error
	// List returns every name under prefix (a directory, ending in /,
	// or "" for all).
	List(ctx context.Context, prefix string) ([]string, error)
}

// storeName is the name of a file of a student's directory.
func storeName(room, dirName, file string) string {
	return room + "/" + dirName + "/" + file
}

// DiskStore keeps recordings under a directory: another disk, a network
// mount. Put copies, fsyncs and then re-reads the copy to check its
// SHA-256.
type DiskStore struct {
	Root string
}

var _ Store = (*DiskStore)(nil)

func (d *DiskStore) path(name string) (string, error) {
	clean := path.Clean("/" + name)[1:]
	if clean == "" || clean != name {
		return "", fmt.Errorf("record: store name %q", name)
	}
	return filepath.Join(d.Root, filepath.FromSlash(clean)), nil
}

// Put implements Store.
func (d *DiskStore) Put(ctx context.Context, name, local string, size int64, sum string) error {
	dst, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	in, err := os.Open(local)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = checkCopy(tmp, size, sum)
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("record: store %s: %w", name, err)
	}
	return nil
}

// checkCopy re-reads a copy and compares it with what it copies.
func checkCopy(path string, size int64, sum string) error {
	got, n, err := hashFile(path)
	if err != nil {
		return err
	}
	if n != size || got != sum {
		return fmt.Errorf("%w: the copy has %d bytes, SHA-256 %s; want %d, %s", errBadCopy, n, got, size, sum)
	}
	return nil
}

// errBadCopy is a copy that does not match its original.
var errBadCopy = errors.New("copy differs")

// Get implements Store.
func (d *DiskStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// Delete implements Store.
func (d *DiskStore) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	os.Remove(filepath.Dir(p)) // only if now empty
	return nil
}

// List implements Store.
func (d *DiskStore) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasSuffix(p, ".tmp") {
			return nil
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		if name := filepath.ToSlash(rel); strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
		return nil
	})
	return out, err
}
