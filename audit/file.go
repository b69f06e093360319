package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/invigil/invigil/room"
)

// maxEventLine bounds one event's JSON line when reading a log back; an
// event is a few hundred bytes, details included.
const maxEventLine = 64 << 10

// FileStore is the audit trail on local disk: one append-only JSON-lines
// file per room. An Append returns once its line is written and the file
// fsynced. Appends that arrive while an fsync runs are written together
// and share the next one (group commit): under load, batches grow by
// themselves and each event waits for at most one fsync behind its own.
type FileStore struct {
	dir  string
	log  *slog.Logger
	reqs chan appendReq
	done chan struct{}
	wg   sync.WaitGroup

	// mu guards rooms: per-room files and the last sequence number. It is
	// taken by the writer and by List.
	mu    sync.Mutex
	rooms map[string]*roomLog
}

type roomLog struct {
	f    *os.File
	seq  int64
	size int64 // bytes of complete lines: a failed write is cut back to it
	path string
}

type appendReq struct {
	room string
	e    room.Event
	resp chan appendResp
}

type appendResp struct {
	e   room.Event
	err error
}

var _ Store = (*FileStore)(nil)

// NewFileStore opens (and makes) dir for event logs; log receives
// their failures (nil discards them).
func NewFileStore(dir string, log *slog.Logger) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("audit: events dir: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &FileStore{dir: dir, log: log, reqs: make(chan appendReq, 1024), done: make(chan struct{}), rooms: make(map[string]*roomLog)}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

// Append writes e to room's log with the next sequence number.
func (s *FileStore) Append(ctx context.Context, roomName string, e room.Event) (room.Event, error) {
	req := appendReq{room: roomName, e: e, resp: make(chan appendResp, 1)}
	select {
	case s.reqs <- req:
	case <-s.done:
		return e, ErrClosed
	case <-ctx.Done():
		return e, ctx.Err()
	}
	select {
	case r := <-req.resp:
		return r.e, r.err
	case <-s.done:
		// Close commits what was queued before it returns.
		s.wg.Wait()
		select {
		case r := <-req.resp:
			return r.e, r.err
		default:
			return e, ErrClosed
		}
	case <-ctx.Done():
		// The writer still writes it; the caller just stops waiting.
		return e, ctx.Err()
	}
}

// writer owns all writes: it takes every request queued, writes them,
// fsyncs each file touched once, then answers them all.
func (s *FileStore) writer() {
	defer s.wg.Done()
	for {
		var batch []appendReq
		closing := false
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.done:
			closing = true
		}
	drain:
		for len(batch) < cap(s.reqs) {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			s.commit(batch)
		}
		if closing {
			return
		}
	}
}

func (s *FileStore) commit(batch []appendReq) {
	results := make([]appendResp, len(batch))
	touched := map[*roomLog][]int{}
	s.mu.Lock()
	for i, r := range batch {
		rl, err := s.openLocked(r.room)
		if err != nil {
			results[i].err = err
			continue
		}
		e := r.e
		e.Seq = rl.seq + 1
		line, err := json.Marshal(e)
		if err == nil {
			_, err = rl.f.Write(append(line, '\n'))
		}
		if err != nil {
			// A partial line (a full disk) is cut off, so the lines
			// written after it once there is room again stay readable.
			rl.f.Truncate(rl.size)
			rl.f.Seek(rl.size, io.SeekStart)
			results[i].err = fmt.Errorf("audit: write event: %w", err)
			continue
		}
		rl.seq = e.Seq
		rl.size += int64(len(line)) + 1
		results[i].e = e
		touched[rl] = append(touched[rl], i)
	}
	s.mu.Unlock()
	for rl, idx := range touched {
		if err := rl.f.Sync(); err != nil {
			for _, i := range idx {
				results[i].err = fmt.Errorf("audit: fsync %s: %w", rl.path, err)
			}
		}
	}
	for i, r := range batch {
		r.resp <- results[i]
	}
}

// openLocked returns room's log, opening it and recovering its last
// sequence number on first use. A torn last line (a crash mid-write,
// never acknowledged) is cut off.
func (s *FileStore) openLocked(roomName string) (*roomLog, error) {
	if rl := s.rooms[roomName]; rl != nil {
		return rl, nil
	}
	path := s.path(roomName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit: open events: %w", err)
	}
	seq, good, err := scanLog(f)
	if err == nil {
		err = f.Truncate(good)
	}
	if err == nil {
		_, err = f.Seek(good, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: recover %s: %w", path, err)
	}
	rl := &roomLog{f: f, seq: seq, size: good, path: path}
	s.rooms[roomName] = rl
	return rl, nil
}

// scanLog reads a log from the start and returns its last sequence
// number and the length of its complete lines.
func scanLog(r io.ReadSeeker) (seq int64, good int64, err error) {
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return seq, good, nil // a partial last line is dropped
		}
		if err != nil {
			return 0, 0, err
		}
		var e struct {
			Seq int64 `json:"seq"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &e) != nil {
			return seq, good, nil
		}
		seq = e.Seq
		good += int64(len(line))
	}
}

// path is room's log file; the name is escaped so any room name is a
// single safe file name.
func (s *FileStore) path(roomName string) string {
	return filepath.Join(s.dir, url.PathEscape(roomName)+".jsonl")
}

// List reads room's events after seq, oldest first.
func (s *FileStore) List(ctx context.Context, roomName string, after int64, limit int) ([]room.Event, error) {
	f, err := os.Open(s.path(roomName))
	if errors.Is(err, os.ErrNotExist) {
		return []room.Event{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read events: %w", err)
	}
	defer f.Close()
	out := []room.Event{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxEventLine)
	for sc.Scan() && len(out) < limit {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var e room.Event
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			break // a torn last line
		}
		if e.Seq > after {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// Close stops the writer and closes the files. Appends in flight finish.
func (s *FileStore) Close() error {
	close(s.done)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, rl := range s.rooms {
		errs = append(errs, rl.f.Close())
	}
	return errors.Join(errs...)
}

// raise makes the next sequence number of room's log at least seq+1:
// the stream already has seq (events another node numbered before this
// one took the room). It returns the log's last sequence number.
func (s *FileStore) raise(roomName string, seq int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rl, err := s.openLocked(roomName)
	if err != nil {
		return 0, err
	}
	rl.seq = max(rl.seq, seq)
	return rl.seq, nil
}

// last is room's last sequence number, opening (and recovering) its log.
func (s *FileStore) last(roomName string) (int64, error) {
	return s.raise(roomName, 0)
}

// roomNames lists the rooms with a log in the directory.
func (s *FileStore) roomNames() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("audit: list events: %w", err)
	}
	var out []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok || e.IsDir() {
			continue
		}
		if r, err := url.PathUnescape(name); err == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// readFrom reads up to limit events of room's log from byte offset off
// on, skipping those with Seq ≤ after; it returns them with their JSON
// lines, the offset after each one's line, and the offset after the
// last line it read.
func (s *FileStore) readFrom(roomName string, off, after int64, limit int) ([]room.Event, [][]byte, []int64, int64, error) {
	f, err := os.Open(s.path(roomName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, off, nil
	}
	if err != nil {
		return nil, nil, nil, off, fmt.Errorf("audit: read events: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, nil, nil, off, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var evs []room.Event
	var lines [][]byte
	var ends []int64
	for len(evs) < limit {
		line, err := br.ReadBytes('\n')
		if err != nil {
			break // EOF, or a torn last line the writer will cut off
		}
		var e room.Event
		raw := bytes.TrimSpace(line)
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		off += int64(len(line))
		if e.Seq > after {
			evs, lines, ends = append(evs, e), append(lines, raw), append(ends, off)
		}
	}
	return evs, lines, ends, off, nil
}

// size is the length of room's log (0 when it has none).
func (s *FileStore) size(roomName string) int64 {
	fi, err := os.Stat(s.path(roomName))
	if err != nil {
		return 0
	}
	return fi.Size()
}
