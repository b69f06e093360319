package metrics

import "github.com/prometheus/client_golang/prometheus"

// TrailStats are the audit trail spool's figures (cluster mode: events
// fsynced on the node and shipped to Redis; docs/cluster.md, "The spool").
type TrailStats struct {
	// BacklogEvents and BacklogBytes are spooled and not yet in Redis.
	BacklogEvents, BacklogBytes int64
	// Refused are events not recorded: the spool was full or the disk
	// refused the write.
	Refused uint64
	// Shipped are events written to Redis; Late, a given-up writer's
	// events kept aside; Reships, streams found behind and shipped again.
	Shipped, Late, Reships uint64
	// Full is true while new events are refused; RedisDown while
	// shipping fails.
	Full, RedisDown bool
}

// trailCollector reports a TrailStats snapshot at scrape time.
type trailCollector struct {
	stats                  func() TrailStats
	events, bytes, full    *prometheus.Desc
	down, refused, shipped *prometheus.Desc
	late, reships          *prometheus.Desc
}

func newTrailCollector(stats func() TrailStats) *trailCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, nil, nil)
	}
	return &trailCollector{
		stats:   stats,
		events:  d("trail_spool_backlog_events", "Audit events fsynced in this node's spool and not yet in Redis."),
		bytes:   d("trail_spool_backlog_bytes", "Bytes of audit events in this node's spool not yet in Redis (against --spool-max-bytes)."),
		full:    d("trail_spool_full", "1 while the spool refuses new audit events (full, or the disk refused a write); /readyz is 503 then."),
		down:    d("trail_redis_down", "1 while the spool cannot ship to Redis."),
		refused: d("trail_spool_refused_events_total", "Audit events not recorded: the spool was full or the disk refused the write."),
		shipped: d("trail_shipped_events_total", "Audit events shipped from the spool to Redis."),
		late:    d("trail_late_events_total", "Audit events this node shipped to events-late: another node had taken and numbered the room past them."),
		reships: d("trail_reships_total", "Times a room's stream was found behind what had been shipped (Redis lost events) and was shipped again from the spool."),
	}
}

// Describe implements prometheus.Collector.
func (c *trailCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.bytes, c.full, c.down, c.refused, c.shipped, c.late, c.reships} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *trailCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	ch <- prometheus.MustNewConstMetric(c.events, prometheus.GaugeValue, float64(s.BacklogEvents))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.BacklogBytes))
	ch <- prometheus.MustNewConstMetric(c.full, prometheus.GaugeValue, b(s.Full))
	ch <- prometheus.MustNewConstMetric(c.down, prometheus.GaugeValue, b(s.RedisDown))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.Refused))
	ch <- prometheus.MustNewConstMetric(c.shipped, prometheus.CounterValue, float64(s.Shipped))
	ch <- prometheus.MustNewConstMetric(c.late, prometheus.CounterValue, float64(s.Late))
	ch <- prometheus.MustNewConstMetric(c.reships, prometheus.CounterValue, float64(s.Reships))
}
