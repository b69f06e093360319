package main

import (
	"context"
	"errors"
	"flag"
	"path/filepath"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/cluster"
	"github.com/invigil/invigil/metrics"
)

// trailFlags are the cluster-mode trail's settings (docs/cluster.md,
// "The spool").
func trailFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.Int64Var(&c.spoolMaxBytes, "spool-max-bytes", audit.DefaultSpoolMaxBytes,
		"cluster mode: audit events spooled under --data-dir/spool and not yet in Redis may take this many bytes; past it new events are refused and /readyz is 503")
	fs.DurationVar(&c.handoverTimeout, "trail-handover-timeout", audit.DefaultHandoverTimeout,
		"cluster mode: how long a node taking a room waits for the room's previous node, silent since, to ship the events it may hold (joins meanwhile answer unavailable, retry)")
}

// validateTrail checks the trail's settings.
func (c serveConfig) validateTrail() error {
	switch {
	case c.spoolMaxBytes < 4096:
		return errors.New("--spool-max-bytes must be at least 4096")
	case c.handoverTimeout <= 0:
		return errors.New("--trail-handover-timeout must be positive")
	}
	return nil
}

// openSpool is the cluster-mode trail: events fsynced under
// <data-dir>/spool, acknowledged, then shipped to the rooms' streams in r.
// A room is held while this node's registry has it (n.held: the
// registry is made after the trail).
func (n *node) openSpool(r *cluster.Redis) error {
	sp, err := audit.NewSpool(audit.SpoolConfig{
		Dir:             filepath.Join(n.cfg.dataDir, "spool"),
		Redis:           r.Client(),
		Prefix:          r.Prefix(),
		NodeID:          n.cfg.nodeID,
		MaxBytes:        n.cfg.spoolMaxBytes,
		HandoverTimeout: n.cfg.handoverTimeout,
		Heartbeats:      r.HeartbeatPrefix(),
		Held: func(name string) bool {
			rooms := n.held.Load()
			return rooms != nil && rooms.Has(name)
		},
		Logger: n.log.With("component", "events"),
	})
	if err != nil {
		return err
	}
	n.spool = sp
	n.onClose(func() { sp.Close() })
	n.trail = sp
	return nil
}

// spoolOwners is signaling's Owners in cluster mode: a room placed on
// this node is joined once this node is its trail's writer (Prepare); a
// room whose previous node may still hold unshipped events answers the
// join "unavailable", which clients retry.
type spoolOwners struct {
	member *cluster.Member
	spool  *audit.Spool
}

// Owner implements signaling.Owners.
func (o spoolOwners) Owner(ctx context.Context, roomName string) (string, bool, error) {
	url, local, err := o.member.Owner(ctx, roomName)
	if err != nil || !local {
		return url, local, err
	}
	if err := o.spool.Prepare(ctx, roomName); err != nil {
		o.member.Arrive(nil) // the join fails here: signaling never sees it local
		return "", false, err
	}
	return url, true, nil
}

// Arrive implements signaling.Owners.
func (o spoolOwners) Arrive(enter func()) { o.member.Arrive(enter) }

// spoolFull says whether the trail refuses events now (/readyz 503).
func (n *node) spoolFull() bool { return n.spool != nil && n.spool.Full() }

// trailStats reports the spool for metrics.
func (n *node) trailStats() metrics.TrailStats {
	s := n.spool.Stats()
	return metrics.TrailStats{BacklogEvents: s.BacklogEvents, BacklogBytes: s.BacklogBytes, Refused: s.Refused,
		Shipped: s.Shipped, Late: s.Late, Reships: s.Reships, Full: s.Full, RedisDown: s.RedisDown}
}
