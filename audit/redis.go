package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/invigil/invigil/room"
	"github.com/redis/go-redis/v9"
)

// RedisStore keeps each room's audit trail in a Redis Stream, so the
// trail of a room that moves between nodes stays one gap-free sequence.
//
//	events:<room>  stream: entry ID "<seq>-1", field "e" = the event as JSON
//
// The sequence number is the entry ID's first part: XADD with the ID
// "*-1"… is not allowed, so a small script takes the last ID and adds one,
// atomically. An Append returns once Redis has the event; with
// appendonly (fsync every second, or always) it also survives a Redis
// restart (docs/cluster.md).
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore stores events through rdb, under keys that start with
// prefix (the cluster's, so several deployments can share one Redis).
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix}
}

// appendScript adds ARGV[1] (JSON) with the next sequence number and
// returns that number.
var appendScript = redis.NewScript(`
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local seq = 1
if #last > 0 then seq = tonumber(string.match(last[1][1], '^(%d+)')) + 1 end
redis.call('XADD', KEYS[1], seq .. '-1', 'e', ARGV[1])
return seq
`)

func (s *RedisStore) key(roomName string) string { return s.prefix + "events:" + roomName }

// Append implements room.EventSink.
func (s *RedisStore) Append(ctx context.Context, roomName string, e room.Event) (room.Event, error) {
	e.Seq = 0
	b, err := json.Marshal(e)
	if err != nil {
		return e, err
	}
	seq, err := appendScript.Run(ctx, s.rdb, []string{s.key(roomName)}, b).Int64()
	if err != nil {
		return e, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	e.Seq = seq
	return e, nil
}

// List implements Store.
func (s *RedisStore) List(ctx context.Context, roomName string, after int64, limit int) ([]room.Event, error) {
	msgs, err := s.rdb.XRangeN(ctx, s.key(roomName), "("+strconv.FormatInt(after, 10)+"-1", "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	out := make([]room.Event, 0, len(msgs))
	for _, m := range msgs {
		seqPart, _, _ := strings.Cut(m.ID, "-")
		seq, err := strconv.ParseInt(seqPart, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("audit: event id %q: %w", m.ID, err)
		}
		raw, _ := m.Values["e"].(string)
		var e room.Event
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return nil, fmt.Errorf("audit: event %s: %w", m.ID, err)
		}
		e.Seq = seq
		out = append(out, e)
	}
	return out, nil
}
