package main

import (
	"context"
	"path/filepath"
	"time"

	"github.com/invigil/invigil/cluster"
	"github.com/invigil/invigil/roomapi"
)

// lockoutLoadTimeout bounds the first read of the revocations at start.
const lockoutLoadTimeout = 2 * time.Second

// openRoomAPI makes the rooms API and its lockouts (ended rooms and
// revocations): kept under --data-dir for a node alone, in Redis in a
// cluster, where calls about a room are forwarded to its node.
func (n *node) openRoomAPI() error {
	var store roomapi.Store
	var dir roomapi.Directory
	if n.redis != nil {
		store = roomapi.NewRedisStore(n.redis.Client(), n.redis.Prefix())
		dir = clusterDirectory{n.redis}
	} else {
		fs, err := roomapi.NewFileStore(filepath.Join(n.cfg.dataDir, "lockouts.json"))
		if err != nil {
			return err
		}
		store = fs
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockoutLoadTimeout)
	defer cancel()
	log := n.log.With("component", "roomapi")
	n.lockouts = roomapi.NewLockouts(ctx, store, n.rooms, log)
	n.roomAPI = roomapi.New(roomapi.Config{Rooms: n.rooms, Lockouts: n.lockouts, Store: store, NodeID: n.cfg.nodeID,
		Directory: dir, Logger: log})
	return nil
}

// clusterDirectory is the cluster as the rooms API reaches it.
type clusterDirectory struct{ r *cluster.Redis }

func (d clusterDirectory) Nodes(ctx context.Context) ([]roomapi.Node, error) {
	ns, err := d.r.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]roomapi.Node, 0, len(ns))
	for _, x := range ns {
		out = append(out, roomapi.Node{ID: x.ID, URL: x.URL})
	}
	return out, nil
}

func (d clusterDirectory) Holder(ctx context.Context, room string) (roomapi.Node, bool, error) {
	p, ok, err := d.r.Holder(ctx, room)
	return roomapi.Node{ID: p.NodeID, URL: p.URL}, ok, err
}
