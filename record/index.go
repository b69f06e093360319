package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"time"
)

// Index is the cluster's index of recorded sessions: for each session
// of a room, the node that recorded it and whether the store holds it
// (in Redis beside the trail: audit.RecordingIndex). A node alone has
// none; its listing is its disk and its store. Entries are opaque to
// the index; key is <identity>/<session>.
type Index interface {
	Put(ctx context.Context, room, key string, entry []byte) error
	Delete(ctx context.Context, room, key string) error
	Entries(ctx context.Context, room string) (map[string][]byte, error)
}

// ErrIndexUnavailable wraps a failure to read the Index (Redis): the
// cluster-wide listing cannot be made now; retry.
var ErrIndexUnavailable = errors.New("record: the recordings index is unavailable")

// Forwarder serves req at the node named node (package roomapi's
// forwarding, adapted by cmd) and reports true; false when it would not
// (req was forwarded already, or node is unknown), and the caller
// answers itself.
type Forwarder func(w http.ResponseWriter, req *http.Request, node string) bool

// indexEntry is one session in the Index.
type indexEntry struct {
	Node     string          `json:"node"`
	Stored   bool            `json:"stored"`
	Manifest json.RawMessage `json:"manifest"`
}

// Index writes leave the writers' goroutines for one goroutine of the
// Recorder's, so that a slow or absent Redis never holds up a recording.
const (
	// indexTimeout bounds one Index call.
	indexTimeout = 2 * time.Second
	// indexRetry is the wait before an Index write that failed is tried
	// again (the latest state of the session is what is written).
	indexRetry = 2 * time.Second
	// indexDrain is how long Close waits for the writes still pending.
	indexDrain = 2 * time.Second
	// indexRescan is how often the sessions on this node's disk are
	// written again (and once at start): a Redis that restarted empty
	// lists them again within it.
	indexRescan = 5 * time.Minute
)

// indexOp is the latest write for one session: an entry, or a delete
// when entry is nil.
type indexOp struct {
	room, key string
	entry     []byte
	n         uint64 // orders the ops of one session
}

// indexer writes the Index from one goroutine, the latest state of each
// session only.
type indexer struct {
	idx Index
	log *slog.Logger
	// rescan adds an op for every session on the node's disk.
	rescan func(add func(indexOp))
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	// ctx is cancelled when close stops waiting.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex         // guards pending and n
	pending map[string]indexOp // by room + "/" + key
	n       uint64
}

func newIndexer(idx Index, log *slog.Logger, rescan func(add func(indexOp))) *indexer {
	x := &indexer{idx: idx, log: log, rescan: rescan, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		pending: map[string]indexOp{}}
	x.ctx, x.cancel = context.WithCancel(context.Background())
	go x.run()
	return x
}

func (x *indexer) add(op indexOp) {
	x.mu.Lock()
	x.n++
	op.n = x.n
	x.pending[op.room+"/"+op.key] = op
	x.mu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

func (x *indexer) run() {
	defer close(x.done)
	retry := time.NewTimer(indexRetry)
	defer retry.Stop()
	rescan := time.NewTicker(indexRescan)
	defer rescan.Stop()
	x.rescan(x.add)
	for {
		if x.flush() {
			retry.Reset(indexRetry)
		}
		select {
		case <-x.wake:
		case <-retry.C:
		case <-rescan.C:
			x.rescan(x.add)
		case <-x.quit:
			x.flush()
			return
		}
	}
}

// flush writes what is pending, stopping at the first failure; an op
// not written stays pending unless a newer one replaced it. It reports
// whether any failed.
func (x *indexer) flush() bool {
	x.mu.Lock()
	ops := make([]indexOp, 0, len(x.pending))
	for _, op := range x.pending {
		ops = append(ops, op)
	}
	x.mu.Unlock()
	failed := false
	for _, op := range ops {
		if x.ctx.Err() != nil {
			return true
		}
		ctx, cancel := context.WithTimeout(x.ctx, indexTimeout)
		var err error
		if op.entry == nil {
			err = x.idx.Delete(ctx, op.room, op.key)
		} else {
			err = x.idx.Put(ctx, op.room, op.key, op.entry)
		}
		cancel()
		id := op.room + "/" + op.key
		x.mu.Lock()
		if err == nil {
			if cur, ok := x.pending[id]; ok && cur.n == op.n {
				delete(x.pending, id)
			}
		}
		x.mu.Unlock()
		if err != nil {
			// The store is likely down: one line per attempt, not per
			// session, and the rest wait for the retry.
			failed = true
			x.log.Warn("recordings index not written; retrying", "pending", len(ops), "retry_in", indexRetry, "err", err)
			break
		}
	}
	return failed
}

// close writes what is pending for up to indexDrain, then stops.
func (x *indexer) close() {
	close(x.quit)
	t := time.NewTimer(indexDrain)
	defer t.Stop()
	select {
	case <-x.done:
	case <-t.C:
		x.cancel()
		<-x.done
	}
	x.cancel()
}

// indexKey names m's session in the Index.
func indexKey(m *Manifest) string { return m.Identity + "/" + m.Session }

// index records m's current state in the Index: held by this node, or
// by the store once stored.
func (r *Recorder) index(m *Manifest, stored bool) {
	if r.ix == nil {
		return
	}
	if op, ok := r.indexOpOf(m, stored); ok {
		r.ix.add(op)
	}
}

func (r *Recorder) indexOpOf(m *Manifest, stored bool) (indexOp, bool) {
	b, err := json.Marshal(m)
	if err != nil {
		return indexOp{}, false
	}
	return r.indexOpRaw(m.Room, indexKey(m), b, stored)
}

func (r *Recorder) indexOpRaw(room, key string, manifest []byte, stored bool) (indexOp, bool) {
	e, err := json.Marshal(indexEntry{Node: r.cfg.NodeID, Stored: stored, Manifest: manifest})
	if err != nil {
		return indexOp{}, false
	}
	return indexOp{room: room, key: key, entry: e}, true
}

func (r *Recorder) indexRaw(room, key string, manifest []byte, stored bool) {
	if r.ix == nil {
		return
	}
	if op, ok := r.indexOpRaw(room, key, manifest, stored); ok {
		r.ix.add(op)
	}
}

// rescanDisk adds the state of every session on this node's disk. The
// ones already stored are the store's to list (every node lists its
// store); nodes without this node's store reach them through the entry
// written when they were stored, which the next change or a retry
// rewrites.
func (r *Recorder) rescanDisk(add func(indexOp)) {
	paths, err := filepath.Glob(filepath.Join(r.cfg.Dir, "*", "*", "*"+ManifestSuffix))
	if err != nil {
		return
	}
	for _, p := range paths {
		m, err := ReadManifest(p)
		if err != nil {
			continue
		}
		if op, ok := r.indexOpOf(m, false); ok {
			add(op)
		}
	}
}

// unindex removes m's session from the Index (retention deleted it).
func (r *Recorder) unindex(m *Manifest) {
	if r.ix != nil {
		r.ix.add(indexOp{room: m.Room, key: indexKey(m)})
	}
}

// writeManifest stores m signed and indexes it.
func (r *Recorder) writeManifest(m *Manifest) error {
	if err := m.write(r.cfg.Signer); err != nil {
		return err
	}
	r.index(m, false)
	return nil
}

// indexed returns the Index's sessions of room that have does not
// list: each held by the node that recorded it (Manifest.held).
// Sessions this node recorded are its disk's and store's to list.
func (r *Recorder) indexed(ctx context.Context, room string, have map[string]bool) ([]*Manifest, error) {
	if r.cfg.Index == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, indexTimeout)
	defer cancel()
	entries, err := r.cfg.Index.Entries(ctx, room)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndexUnavailable, err)
	}
	var out []*Manifest
	for key, b := range entries {
		var e indexEntry
		m := &Manifest{}
		if err := json.Unmarshal(b, &e); err != nil || json.Unmarshal(e.Manifest, m) != nil {
			r.log.Warn("unreadable recordings index entry", "room", room, "session", key)
			continue
		}
		if e.Node == r.cfg.NodeID || have[indexKey(m)] || m.Room != room {
			continue
		}
		m.held = e.Node
		out = append(out, m)
	}
	return out, nil
}
