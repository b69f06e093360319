package roomapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore is the Store of a cluster, in its Redis under the cluster's
// prefix (docs/cluster.md):
//
//	ended        hash: room → the unix second it was ended
//	revocations  hash: JSON ["<room>","<identity>"] → the revocation as JSON
//
// Every node reads the same hashes, so a marker or revocation written
// through one node holds on all, and survives any node's restart.
type RedisStore struct {
	rdb    *redis.Client
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns the store on rdb under prefix (the cluster's).
func NewRedisStore(rdb *redis.Client, prefix string) *RedisStore {
	return &RedisStore{rdb: rdb, prefix: prefix}
}

func (s *RedisStore) endedKey() string       { return s.prefix + "ended" }
func (s *RedisStore) revocationsKey() string { return s.prefix + "revocations" }

// field is a revocation's hash field: unambiguous whatever the names
// hold.
func field(room, identity string) string {
	b, _ := json.Marshal([]string{room, identity}) // strings always marshal
	return string(b)
}

// MarkEnded implements Store; markers past MarkTTL are dropped as it
// writes.
func (s *RedisStore) MarkEnded(ctx context.Context, room string, at time.Time) error {
	all, err := s.rdb.HGetAll(ctx, s.endedKey()).Result()
	if err != nil {
		return fmt.Errorf("roomapi: ended markers: %w", err)
	}
	var old []string
	for r, v := range all {
		if sec, err := strconv.ParseInt(v, 10, 64); err != nil || time.Since(time.Unix(sec, 0)) > MarkTTL {
			old = append(old, r)
		}
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if len(old) > 0 {
			p.HDel(ctx, s.endedKey(), old...)
		}
		p.HSet(ctx, s.endedKey(), room, at.Unix())
		return nil
	})
	if err != nil {
		return fmt.Errorf("roomapi: mark %q ended: %w", room, err)
	}
	return nil
}

// Ended implements Store.
func (s *RedisStore) Ended(ctx context.Context, room string) (time.Time, error) {
	v, err := s.rdb.HGet(ctx, s.endedKey(), room).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("roomapi: ended marker of %q: %w", room, err)
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("roomapi: ended marker of %q is %q: %w", room, v, err)
	}
	at := time.Unix(sec, 0).UTC()
	if time.Since(at) > MarkTTL {
		return time.Time{}, nil
	}
	return at, nil
}

// Revoke implements Store.
func (s *RedisStore) Revoke(ctx context.Context, r Revocation) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("roomapi: %w", err)
	}
	if err := s.rdb.HSet(ctx, s.revocationsKey(), field(r.Room, r.Identity), b).Err(); err != nil {
		return fmt.Errorf("roomapi: revoke: %w", err)
	}
	return nil
}

// Lift implements Store.
func (s *RedisStore) Lift(ctx context.Context, identity, room string) error {
	n, err := s.rdb.HDel(ctx, s.revocationsKey(), field(room, identity)).Result()
	if err != nil {
		return fmt.Errorf("roomapi: lift: %w", err)
	}
	if n == 0 {
		return ErrNoRevocation
	}
	return nil
}

// Revocations implements Store; expired ones are deleted as it reads.
func (s *RedisStore) Revocations(ctx context.Context) ([]Revocation, error) {
	all, err := s.rdb.HGetAll(ctx, s.revocationsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("roomapi: revocations: %w", err)
	}
	now := time.Now()
	out := []Revocation{}
	var expired []string
	for f, v := range all {
		var r Revocation
		if err := json.Unmarshal([]byte(v), &r); err != nil || !now.Before(r.Until) {
			expired = append(expired, f)
			continue
		}
		out = append(out, r)
	}
	if len(expired) > 0 {
		// Best effort: a failure leaves them for the next read.
		_ = s.rdb.HDel(ctx, s.revocationsKey(), expired...).Err()
	}
	slices.SortFunc(out, func(a, b Revocation) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Revoked implements Store: one round trip for the room's and the
// every-room revocation.
func (s *RedisStore) Revoked(ctx context.Context, room, identity string) (Revocation, bool, error) {
	vs, err := s.rdb.HMGet(ctx, s.revocationsKey(), field(room, identity), field(AllRooms, identity)).Result()
	if err != nil {
		return Revocation{}, false, fmt.Errorf("roomapi: revoked: %w", err)
	}
	now := time.Now()
	for _, v := range vs {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var r Revocation
		if json.Unmarshal([]byte(str), &r) == nil && r.covers(room, identity, now) {
			return r, true, nil
		}
	}
	return Revocation{}, false, nil
}
