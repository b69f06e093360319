package cluster

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Holder returns the live node that holds room, without claiming it
// (the rooms API forwards a call about a room there); false when no
// live node does. Added for the rooms API (package roomapi).
func (r *Redis) Holder(ctx context.Context, room string) (Placement, bool, error) {
	id, err := r.rdb.Get(ctx, r.prefix+"room:"+room).Result()
	if errors.Is(err, redis.Nil) {
		return Placement{}, false, nil
	}
	if err != nil {
		return Placement{}, false, unavailable(err)
	}
	url, err := r.rdb.HGet(ctx, r.prefix+"node:"+id, "url").Result()
	if errors.Is(err, redis.Nil) {
		return Placement{}, false, nil // its node is gone: nobody holds it
	}
	if err != nil {
		return Placement{}, false, unavailable(err)
	}
	return Placement{Room: room, NodeID: id, URL: url}, true, nil
}
