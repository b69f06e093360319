package main

import (
	"errors"
	"flag"
	"strings"

	"github.com/invigil/invigil/cluster"
)

// sentinelFlags are Redis Sentinel's settings (docs/cluster.md, "Redis
// Sentinel"): with them the node finds the cluster's Redis primary
// through the sentinels and follows it across failovers.
func sentinelFlags(fs *flag.FlagSet, c *serveConfig) {
	fs.StringVar(&c.sentinelAddrs, "redis-sentinel-addrs", "",
		"cluster mode through Redis Sentinel: comma-separated host:port of the sentinels (with --redis-sentinel-master; --redis-url then only gives the password and database)")
	fs.StringVar(&c.sentinelMaster, "redis-sentinel-master", "",
		"the name the sentinels monitor the cluster's Redis primary under (with --redis-sentinel-addrs)")
}

// clusterMode says whether the node shares a Redis with other nodes.
func (c serveConfig) clusterMode() bool {
	return c.redisURL != "" || c.sentinelAddrs != ""
}

// sentinels are --redis-sentinel-addrs, split and trimmed.
func (c serveConfig) sentinels() []string {
	var out []string
	for _, a := range strings.Split(c.sentinelAddrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// validateSentinel checks that the sentinel flags come together.
func (c serveConfig) validateSentinel() error {
	switch {
	case (c.sentinelAddrs == "") != (c.sentinelMaster == ""):
		return errors.New("--redis-sentinel-addrs and --redis-sentinel-master go together")
	case c.sentinelAddrs != "" && len(c.sentinels()) == 0:
		return errors.New("--redis-sentinel-addrs names no sentinel")
	}
	return nil
}

// openRedis connects to the cluster's Redis: through the sentinels when
// they are set, else at --redis-url.
func (c serveConfig) openRedis() (*cluster.Redis, error) {
	if c.sentinelAddrs != "" {
		return cluster.NewRedisSentinel(cluster.Sentinel{Addrs: c.sentinels(), Master: c.sentinelMaster, URL: c.redisURL}, "")
	}
	return cluster.NewRedis(c.redisURL, "")
}
