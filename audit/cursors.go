package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// EndpointID names a webhook endpoint's cursors: the first 16 hex digits
// of the SHA-256 of its URL, so a node pointed at another URL starts that
// endpoint's delivery afresh and one pointed back resumes.
func EndpointID(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// FileCursors keeps a webhook endpoint's cursors in a directory (one
// node: <data-dir>/webhook/<endpoint>): a file per room holding its
// cursor, replaced atomically and fsynced; "since"; and dead.jsonl, the
// dead letters, one JSON object a line.
type FileCursors struct {
	dir string

	// mu guards cursors (what the files hold) and the files.
	mu      sync.Mutex
	cursors map[string]int64
}

var _ Cursors = (*FileCursors)(nil)

// NewFileCursors opens (or makes) dir and reads its cursors.
func NewFileCursors(dir string) (*FileCursors, error) {
	if err := os.MkdirAll(filepath.Join(dir, "rooms"), 0o700); err != nil {
		return nil, fmt.Errorf("audit: webhook cursors: %w", err)
	}
	c := &FileCursors{dir: dir, cursors: map[string]int64{}}
	ents, err := os.ReadDir(filepath.Join(dir, "rooms"))
	if err != nil {
		return nil, fmt.Errorf("audit: webhook cursors: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".cursor")
		if !ok {
			continue // a temporary file a crash left
		}
		roomName, err := url.PathUnescape(name)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "rooms", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("audit: webhook cursor: %w", err)
		}
		seq, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: webhook cursor %s: %w", e.Name(), err)
		}
		c.cursors[roomName] = seq
	}
	return c, nil
}

// Load implements Cursors.
func (c *FileCursors) Load(context.Context) (map[string]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.cursors))
	for k, v := range c.cursors {
		out[k] = v
	}
	return out, nil
}

// Cursor implements Cursors.
func (c *FileCursors) Cursor(_ context.Context, roomName string) (int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := c.cursors[roomName]
	return seq, ok, nil
}

// Advance implements Cursors.
func (c *FileCursors) Advance(_ context.Context, roomName string, seq int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.cursors[roomName]; ok && cur >= seq {
		return cur, nil
	}
	path := filepath.Join(c.dir, "rooms", url.PathEscape(roomName)+".cursor")
	if err := writeFileSync(path, []byte(strconv.FormatInt(seq, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("audit: webhook cursor: %w", err)
	}
	c.cursors[roomName] = seq
	return seq, nil
}

// Since implements Cursors.
func (c *FileCursors) Since(context.Context) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path := filepath.Join(c.dir, "since")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		now := time.Now()
		if err := writeFileSync(path, []byte(strconv.FormatInt(now.UnixMilli(), 10)+"\n")); err != nil {
			return time.Time{}, fmt.Errorf("audit: webhook since: %w", err)
		}
		return time.UnixMilli(now.UnixMilli()), nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("audit: webhook since: %w", err)
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("audit: webhook since: %w", err)
	}
	return time.UnixMilli(ms), nil
}

// DeadLetter implements Cursors: a line of dead.jsonl, fsynced.
func (c *FileCursors) DeadLetter(_ context.Context, d DeadLetter) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(c.dir, "dead.jsonl"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: webhook dead letter: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit: webhook dead letter: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit: webhook dead letter: %w", err)
	}
	return f.Close()
}

// DeadLetters implements Cursors.
func (c *FileCursors) DeadLetters(context.Context) ([]DeadLetter, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadLettersLocked()
}

// Resolve implements Cursors: dead.jsonl is rewritten without them
// (replaced atomically and fsynced, under the lock appends take).
func (c *FileCursors) Resolve(_ context.Context, done []DeadLetter) error {
	gone := deadKeys(done)
	c.mu.Lock()
	defer c.mu.Unlock()
	all, err := c.deadLettersLocked()
	if err != nil {
		return err
	}
	var b []byte
	for _, d := range all {
		if gone[deadKey(d)] {
			continue
		}
		line, err := json.Marshal(d)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	if err := writeFileSync(filepath.Join(c.dir, "dead.jsonl"), b); err != nil {
		return fmt.Errorf("audit: webhook dead letters: %w", err)
	}
	return nil
}

// deadKey names a dead letter's event: its room and seq.
func deadKey(d DeadLetter) string { return d.Room + ":" + strconv.FormatInt(d.Event.Seq, 10) }

func deadKeys(ds []DeadLetter) map[string]bool {
	m := make(map[string]bool, len(ds))
	for _, d := range ds {
		m[deadKey(d)] = true
	}
	return m
}

func (c *FileCursors) deadLettersLocked() ([]DeadLetter, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "dead.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DeadLetter
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var d DeadLetter
		if line == "" || json.Unmarshal([]byte(line), &d) != nil {
			continue // a line a crash cut short
		}
		out = append(out, d)
	}
	return out, nil
}

// writeFileSync replaces path with b: a temporary file, fsynced, renamed
// over it, and the directory fsynced, so a crash leaves the old content
// or the new.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RedisCursors keeps a webhook endpoint's cursors in Redis (cluster
// mode), shared by the nodes: under <prefix>webhook:<endpoint>:,
// "cursor" (hash: room → seq), "since" (unix ms) and "dead" (list of
// dead letters as JSON, oldest first).
type RedisCursors struct {
	rdb    redis.UniversalClient
	prefix string // <prefix>webhook:<endpoint>:
}

var _ Cursors = (*RedisCursors)(nil)

// NewRedisCursors keeps endpoint's cursors in rdb under prefix.
func NewRedisCursors(rdb redis.UniversalClient, prefix, endpoint string) *RedisCursors {
	return &RedisCursors{rdb: rdb, prefix: prefix + "webhook:" + endpoint + ":"}
}

// advanceScript raises a room's cursor (KEYS[1] field ARGV[1]) to
// ARGV[2] unless it is past it, and answers the cursor after.
var advanceScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local seq = tonumber(ARGV[2])
if seq > cur then
  redis.call('HSET', KEYS[1], ARGV[1], seq)
  return seq
end
return cur
`)

// Load implements Cursors.
func (c *RedisCursors) Load(ctx context.Context) (map[string]int64, error) {
	m, err := c.rdb.HGetAll(ctx, c.prefix+"cursor").Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		if seq, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = seq
		}
	}
	return out, nil
}

// Cursor implements Cursors.
func (c *RedisCursors) Cursor(ctx context.Context, roomName string) (int64, bool, error) {
	seq, err := c.rdb.HGet(ctx, c.prefix+"cursor", roomName).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return seq, true, nil
}

// Advance implements Cursors.
func (c *RedisCursors) Advance(ctx context.Context, roomName string, seq int64) (int64, error) {
	cur, err := advanceScript.Run(ctx, c.rdb, []string{c.prefix + "cursor"}, roomName, seq).Int64()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return cur, nil
}

// Since implements Cursors.
func (c *RedisCursors) Since(ctx context.Context) (time.Time, error) {
	key := c.prefix + "since"
	if err := c.rdb.SetNX(ctx, key, time.Now().UnixMilli(), 0).Err(); err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	ms, err := c.rdb.Get(ctx, key).Int64()
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return time.UnixMilli(ms), nil
}

// DeadLetter implements Cursors.
func (c *RedisCursors) DeadLetter(ctx context.Context, d DeadLetter) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := c.rdb.RPush(ctx, c.prefix+"dead", b).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// resolveScript drops from the dead-letter list (KEYS[1]) the entries
// whose room and event seq are among ARGV ("room:seq"), in one step, so
// a dead letter added meanwhile stays.
var resolveScript = redis.NewScript(`
local gone = {}
for i = 1, #ARGV do gone[ARGV[i]] = true end
local all = redis.call('LRANGE', KEYS[1], 0, -1)
local keep = {}
for _, s in ipairs(all) do
  local ok, d = pcall(cjson.decode, s)
  local key = ok and type(d) == 'table' and type(d.event) == 'table' and (tostring(d.room) .. ':' .. string.format('%d', d.event.seq or -1))
  if not (key and gone[key]) then keep[#keep + 1] = s end
end
if #keep == #all then return 0 end
redis.call('DEL', KEYS[1])
for i = 1, #keep, 1000 do
  redis.call('RPUSH', KEYS[1], unpack(keep, i, math.min(i + 999, #keep)))
end
return #all - #keep
`)

// Resolve implements Cursors.
func (c *RedisCursors) Resolve(ctx context.Context, done []DeadLetter) error {
	if len(done) == 0 {
		return nil
	}
	args := make([]any, 0, len(done))
	for _, d := range done {
		args = append(args, deadKey(d))
	}
	if err := resolveScript.Run(ctx, c.rdb, []string{c.prefix + "dead"}, args...).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// DeadLetters implements Cursors.
func (c *RedisCursors) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	raw, err := c.rdb.LRange(ctx, c.prefix+"dead", 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	out := make([]DeadLetter, 0, len(raw))
	for _, s := range raw {
		var d DeadLetter
		if json.Unmarshal([]byte(s), &d) == nil {
			out = append(out, d)
		}
	}
	return out, nil
}
