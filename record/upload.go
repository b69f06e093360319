package record

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EventUploadFailed is a file the node could not copy to the store; it
// keeps the local copy and tries again.
const EventUploadFailed = "recording_upload_failed"

const (
	// uploadWorkers copy files to the store at once. A session's files
	// all go through one worker, in order, so its manifest follows them.
	uploadWorkers = 2
	// uploadRetryMin and uploadRetryMax bound the wait between attempts
	// (doubling): a store that is down is asked about once a minute.
	uploadRetryMin = time.Second
	uploadRetryMax = time.Minute
	// uploadEventEvery spaces the audit events of one failing file: the
	// first failure and every tenth after it.
	uploadEventEvery = 10
	// DefaultUploadDrain is how long Close waits for queued uploads; what
	// is left stays on disk and goes on the next start.
	DefaultUploadDrain = 30 * time.Second
)

// uploadJob copies one local file to the store.
type uploadJob struct {
	room, dir, session string // dir: the student's directory name
	file               string // the file's name, or the manifest's
	local              string
	manifest           bool // read size and hash at upload: it is the last job
	size               int64
	sum                string
}

// uploadQueue is one worker's jobs, in order.
type uploadQueue struct {
	mu     sync.Mutex // guards jobs and closed
	jobs   []uploadJob
	closed bool
	wake   chan struct{} // capacity 1: a job was added or the queue closed
}

// uploader copies finished files to the Recorder's Store and removes the
// local copies once each copy is verified.
type uploader struct {
	r      *Recorder
	store  Store
	log    *slog.Logger
	queues []*uploadQueue
	ctx    context.Context // cancelled when Close stops waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup

	uploaded, uploadedBytes, failures atomic.Uint64
}

func newUploader(r *Recorder, store Store, log *slog.Logger) *uploader {
	u := &uploader{r: r, store: store, log: log}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	for range uploadWorkers {
		q := &uploadQueue{wake: make(chan struct{}, 1)}
		u.queues = append(u.queues, q)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.work(q)
		}()
	}
	return u
}

// add queues j on its session's worker.
func (u *uploader) add(j uploadJob) {
	h := fnv.New32a()
	io.WriteString(h, j.room+"/"+j.dir+"/"+j.session)
	q := u.queues[h.Sum32()%uint32(len(u.queues))]
	q.mu.Lock()
	if !q.closed {
		q.jobs = append(q.jobs, j)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pending counts the jobs not done yet.
func (u *uploader) pending() int {
	n := 0
	for _, q := range u.queues {
		q.mu.Lock()
		n += len(q.jobs)
		q.mu.Unlock()
	}
	return n
}

// close lets the workers finish the queued jobs for up to drain, then
// stops them; unfinished files stay on disk for the next start.
func (u *uploader) close(drain time.Duration) {
	for _, q := range u.queues {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	done := make(chan struct{})
	go func() {
		u.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if n := u.pending(); n > 0 {
			u.log.Warn("uploads left for the next start", "files", n)
		}
		u.cancel()
		<-done
	}
	u.cancel()
}

func (u *uploader) work(q *uploadQueue) {
	for {
		q.mu.Lock()
		if len(q.jobs) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-q.wake:
			case <-u.ctx.Done():
				return
			}
			continue
		}
		j := q.jobs[0]
		q.mu.Unlock()
		if !u.run(j) {
			return // stopped: the job stays on disk
		}
		q.mu.Lock()
		q.jobs = slices.Delete(q.jobs, 0, 1)
		q.mu.Unlock()
	}
}

// run copies j, retrying with backoff until it succeeds, cannot ever
// succeed (the local file is gone), or the uploader stops (false).
func (u *uploader) run(j uploadJob) bool {
	wait := uploadRetryMin
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := u.once(j)
		if err == nil {
			u.log.Debug("recording file stored", "room", j.room, "file", j.file, "took", time.Since(start))
			return true
		}
		if errors.Is(err, os.ErrNotExist) {
			u.log.Warn("recording file gone before it was stored", "room", j.room, "file", j.file, "err", err)
			return true
		}
		if u.ctx.Err() != nil {
			return false
		}
		u.failures.Add(1)
		u.log.Warn("recording upload failed; the local copy stays", "room", j.room, "file", j.file,
			"attempt", attempt, "retry_in", wait, "err", err)
		if attempt%uploadEventEvery == 1 {
			u.r.cfg.Events(j.room, EventUploadFailed, j.dir, map[string]any{
				"session": j.session, "file": j.file, "attempt": attempt, "error": err.Error()})
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-u.ctx.Done():
			t.Stop()
			return false
		}
		wait = min(2*wait, uploadRetryMax)
	}
}

// once copies j once and, when the copy is verified, removes the local
// file (and the student's directory once it is empty).
func (u *uploader) once(j uploadJob) error {
	size, sum := j.size, j.sum
	var manifest []byte
	if j.manifest {
		var err error
		if manifest, err = os.ReadFile(j.local); err != nil {
			return err
		}
		if sum, size, err = hashFile(j.local); err != nil {
			return err
		}
	}
	if err := u.store.Put(u.ctx, storeName(j.room, j.dir, j.file), j.local, size, sum); err != nil {
		return err
	}
	u.uploaded.Add(1)
	u.uploadedBytes.Add(uint64(size))
	if err := os.Remove(j.local); err != nil && !errors.Is(err, os.ErrNotExist) {
		u.log.Warn("stored recording file not removed from disk", "path", j.local, "err", err)
	}
	if j.manifest {
		os.Remove(filepath.Dir(j.local)) // only if now empty
		u.r.indexRaw(j.room, j.dir+"/"+j.session, manifest, true)
	}
	return nil
}

// upload queues a finished file of m's session for the store.
func (r *Recorder) upload(m *Manifest, f File) {
	if r.up == nil {
		return
	}
	r.up.add(uploadJob{room: m.Room, dir: filepath.Base(m.Dir), session: m.Session, file: f.Name,
		local: filepath.Join(m.Dir, f.Name), size: f.Bytes, sum: f.SHA256})
}

// uploadManifest queues m's manifest, after its files.
func (r *Recorder) uploadManifest(m *Manifest) {
	if r.up == nil {
		return
	}
	name := m.Session + ManifestSuffix
	r.up.add(uploadJob{room: m.Room, dir: filepath.Base(m.Dir), session: m.Session, file: name,
		local: filepath.Join(m.Dir, name), manifest: true})
}

// resume queues what an earlier run left on disk: every listed file
// still there, then the manifest. A session that was still recording
// when the node stopped is closed first: it ends at its last file's
// end, stop_reason interrupted, signed again (the segment that was open
// is not listed, and stays on disk).
func (r *Recorder) resume() {
	paths, err := filepath.Glob(filepath.Join(r.cfg.Dir, "*", "*", "*"+ManifestSuffix))
	if err != nil {
		return
	}
	for _, p := range paths {
		m, err := ReadManifest(p)
		if err != nil {
			r.log.Warn("unreadable manifest left on disk", "path", p, "err", err)
			continue
		}
		if m.Ended.IsZero() {
			m.Ended, m.StopReason = m.Started, "interrupted"
			for _, f := range m.Files {
				if f.End.After(m.Ended) {
					m.Ended = f.End
				}
			}
			if err := r.writeManifest(m); err != nil {
				r.log.Warn("interrupted recording not closed", "path", p, "err", err)
				continue
			}
		}
		for _, f := range m.Files {
			if !safeName(f.Name) {
				continue
			}
			if _, err := os.Stat(filepath.Join(m.Dir, f.Name)); err == nil {
				r.upload(m, f)
			}
		}
		r.uploadManifest(m)
	}
}
