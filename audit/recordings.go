package audit

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RecordingIndex is the cluster's index of recorded sessions, kept
// beside the trail in the same Redis: one hash per room
// (<prefix>recordings:<room>), a field per session (<identity>/<session>)
// whose value the recorder writes (which node recorded it, whether the
// store holds it, its manifest) when the session's manifest is written
// and when it is stored. It implements record.Index, which audit does
// not import: the values are opaque here.
type RecordingIndex struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRecordingIndex is the index in rdb under prefix (the cluster's,
// e.g. "invigil:").
func NewRecordingIndex(rdb redis.UniversalClient, prefix string) *RecordingIndex {
	return &RecordingIndex{rdb: rdb, prefix: prefix}
}

func (x *RecordingIndex) key(room string) string { return x.prefix + "recordings:" + room }

// Put sets session key's entry in room.
func (x *RecordingIndex) Put(ctx context.Context, room, key string, entry []byte) error {
	if err := x.rdb.HSet(ctx, x.key(room), key, entry).Err(); err != nil {
		return fmt.Errorf("audit: recordings index: %w", err)
	}
	return nil
}

// Delete removes session key from room (retention deleted it).
func (x *RecordingIndex) Delete(ctx context.Context, room, key string) error {
	if err := x.rdb.HDel(ctx, x.key(room), key).Err(); err != nil {
		return fmt.Errorf("audit: recordings index: %w", err)
	}
	return nil
}

// Entries returns every session's entry in room.
func (x *RecordingIndex) Entries(ctx context.Context, room string) (map[string][]byte, error) {
	m, err := x.rdb.HGetAll(ctx, x.key(room)).Result()
	if err != nil {
		return nil, fmt.Errorf("audit: recordings index: %w", err)
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}
