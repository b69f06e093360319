package cluster

import (
	"context"
	"fmt"
)

// Every node publishes the public keys that verify its recordings'
// manifests, retired ones included, in one hash
// (<prefix>recording-keys, a field per node ID, its keyring's JSON), so
// that any node answers GET /v1/recordings/keys for the whole cluster.
// The fields never expire: a manifest outlives the node that signed it.

// PublishRecordingKeys sets node's keyring (JSON).
func (r *Redis) PublishRecordingKeys(ctx context.Context, node string, keyring []byte) error {
	if err := r.rdb.HSet(ctx, r.prefix+"recording-keys", node, keyring).Err(); err != nil {
		return fmt.Errorf("cluster: recording keys: %w", unavailable(err))
	}
	return nil
}

// RecordingKeys returns every node's published keyring (JSON) by node ID.
func (r *Redis) RecordingKeys(ctx context.Context) (map[string][]byte, error) {
	m, err := r.rdb.HGetAll(ctx, r.prefix+"recording-keys").Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: recording keys: %w", unavailable(err))
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}
