package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/invigil/invigil/cluster"
	"github.com/invigil/invigil/metrics"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
	"github.com/invigil/invigil/signaling"
)

// openRedis connects to --redis-url, nil without one. It does not wait
// for Redis: a node starts and serves while Redis is down.
func openRedis(cfg serveConfig, log *slog.Logger) (*cluster.Redis, error) {
	if cfg.redisURL == "" {
		return nil, nil
	}
	cluster.SetRedisLogger(log)
	return cluster.NewRedis(cfg.redisURL, "")
}

// openEvents is the audit store: a Redis Stream per room in cluster mode
// (a room keeps one sequence when it moves between nodes), else a file
// per room under --data-dir.
func openEvents(cfg serveConfig, r *cluster.Redis, log *slog.Logger) (room.EventStore, func() error, error) {
	if r != nil {
		return cluster.NewRedisEvents(r), func() error { return nil }, nil
	}
	fe, err := cluster.NewFileEvents(filepath.Join(cfg.dataDir, "events"), log.With("component", "events"))
	if err != nil {
		return nil, nil, err
	}
	return fe, fe.Close, nil
}

// newCluster is the Redis cluster when --redis-url is set, else this
// node alone.
func newCluster(cfg serveConfig, r *cluster.Redis, public string) cluster.Cluster {
	if r == nil {
		return cluster.NewMemory(cfg.nodeID, public)
	}
	return r
}

// owners answers signaling's "who holds this room?" from the cluster.
type owners struct {
	c    cluster.Cluster
	node string
	mtr  *metrics.Metrics
}

func (o owners) Owner(ctx context.Context, roomName string) (string, bool, error) {
	p, err := o.c.Claim(ctx, roomName, o.node)
	if err != nil {
		o.mtr.RedisError()
		return "", false, err
	}
	return p.URL, p.NodeID == o.node, nil
}

// clusterLoops publishes this node's occupancy every heartbeat and renews
// its rooms' leases, until ctx ends. Store errors are counted and logged
// when the store goes away and when it comes back: media never depends
// on it, and /readyz does not change.
func clusterLoops(ctx context.Context, c cluster.Cluster, node, public string, capacity func() metrics.Capacity,
	media func() sfu.Stats, rooms *room.Rooms, mtr *metrics.Metrics, log *slog.Logger) {
	var down atomic.Bool
	report := func(what string, err error) {
		if err != nil {
			mtr.RedisError()
			if down.CompareAndSwap(false, true) {
				log.Error("cluster store unreachable: rooms here keep their media; placement and joins of rooms held elsewhere fail until it is back", "during", what, "err", err)
			}
			return
		}
		if down.CompareAndSwap(true, false) {
			log.Info("cluster store reachable again", "during", what)
		}
	}
	// Forwarded bitrate and CPU are rates over the last heartbeat.
	lastAt, lastBytes, lastCPU := time.Now(), media().BytesOut, processCPU()
	heartbeat := func() {
		cp, ms, cpu, now := capacity(), media(), processCPU(), time.Now()
		dt := now.Sub(lastAt).Seconds()
		var bps uint64
		var cpuShare float64
		if dt > 0 {
			bps = uint64(float64(ms.BytesOut-lastBytes) * 8 / dt)
			cpuShare = (cpu - lastCPU).Seconds() / dt / float64(runtime.NumCPU())
		}
		lastAt, lastBytes, lastCPU = now, ms.BytesOut, cpu
		hctx, cancel := context.WithTimeout(ctx, cluster.HeartbeatInterval)
		defer cancel()
		report("heartbeat", c.Heartbeat(hctx, cluster.Node{ID: node, URL: public, Rooms: cp.Rooms,
			Students: cp.Students, Proctors: cp.Proctors, Capacity: cp.MaxParticipants,
			Tracks: int(ms.AudioTracksIn + ms.VideoTracksIn), BitrateBps: bps, CPU: cpuShare,
			FreeSeats: cp.FreeSeats, Draining: cp.Draining, Version: version}))
	}
	renew := func() {
		rctx, cancel := context.WithTimeout(ctx, cluster.LeaseRenew)
		defer cancel()
		report("lease renewal", c.Renew(rctx, node, rooms.Names()))
	}
	heartbeat()
	beat := time.NewTicker(cluster.HeartbeatInterval)
	defer beat.Stop()
	lease := time.NewTicker(cluster.LeaseRenew)
	defer lease.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			heartbeat()
		case <-lease.C:
			renew()
		}
	}
}

// processCPU is the CPU time this process has used (user + system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// placementHandler serves GET /v1/placement?room=R[&expected=N] to
// admins: the room's owner, or the node it is assigned to now.
func placementHandler(secret []byte, c cluster.Cluster, mtr *metrics.Metrics) http.Handler {
	return signaling.RequireAdmin(secret, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fail := func(status int, code, msg string) {
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
		}
		roomName := r.URL.Query().Get("room")
		if roomName == "" || len(roomName) > 128 {
			fail(http.StatusBadRequest, "malformed", "room is required (at most 128 bytes)")
			return
		}
		expected := 0
		if e := r.URL.Query().Get("expected"); e != "" {
			n, err := strconv.Atoi(e)
			if err != nil || n < 0 || n > 100_000 {
				fail(http.StatusBadRequest, "malformed", "expected must be a number of seats")
				return
			}
			expected = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		p, err := c.Place(ctx, roomName, expected)
		switch {
		case errors.Is(err, cluster.ErrNoCapacity):
			fail(http.StatusServiceUnavailable, "no_capacity", "no ready node has room for "+strconv.Itoa(expected)+" more seats")
		case errors.Is(err, cluster.ErrUnavailable):
			mtr.RedisError()
			fail(http.StatusServiceUnavailable, "unavailable", "the cluster store (Redis) is unreachable; rooms in progress are not affected; retry shortly")
		case err != nil:
			fail(http.StatusInternalServerError, "internal", "placement failed")
		default:
			json.NewEncoder(w).Encode(p)
		}
	}))
}
