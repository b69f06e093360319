package metrics

import "github.com/prometheus/client_golang/prometheus"

// turnRefusalReasons are the reason label values of
// invigil_turn_refusals_total, always all present.
var turnRefusalReasons = []string{"bad_credentials", "expired", "forbidden_peer", "quota", "bandwidth", "denied"}

// snapshotCollector turns the scrape-time snapshots of Sources into
// metrics, so nothing on the forwarding path touches Prometheus.
type snapshotCollector struct {
	cfg Sources

	rooms, participants, tracks      *prometheus.Desc
	packets, bytes, lost             *prometheus.Desc
	nacks, retransmits, plis, layers *prometheus.Desc
	turnAllocs, turnBytes            *prometheus.Desc
	turnRefused, turnCert            *prometheus.Desc
	recordings, recBytes             *prometheus.Desc
	recFailures, recDropped          *prometheus.Desc
	nacksSent, dropped, rejected     *prometheus.Desc
	dtlsFailures, sessions           *prometheus.Desc
	webhooks                         *prometheus.Desc
}

func newSnapshotCollector(cfg Sources) *snapshotCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
	}
	return &snapshotCollector{
		cfg:          cfg,
		rooms:        d("rooms", "Rooms open on this node."),
		participants: d("participants", "Participants connected to this node, by role.", "role"),
		tracks:       d("tracks", "Media tracks: published to this node (in) and forwarded to subscribers (out).", "kind", "direction"),
		packets:      d("rtp_packets_total", "RTP packets received from publishers (in) and sent to subscribers (out).", "direction"),
		bytes:        d("rtp_bytes_total", "RTP bytes (header and payload) received (in) and sent (out).", "direction"),
		lost:         d("rtp_packets_lost_total", "RTP packets subscribers reported lost in their receiver reports."),
		nacks:        d("nacks_total", "RTP packets subscribers asked to be resent (generic NACK)."),
		retransmits:  d("retransmits_total", "RTP packets resent to subscribers in answer to NACKs."),
		plis:         d("plis_total", "Keyframe requests (PLI) sent to publishers."),
		layers:       d("layer_switches_total", "Simulcast layer switches made for subscribers."),
		turnAllocs:   d("turn_allocations", "Live allocations on the embedded TURN server."),
		turnBytes:    d("turn_relayed_bytes_total", "Bytes relayed by the embedded TURN server."),
		turnRefused:  d("turn_refusals_total", "TURN requests the embedded server refused, by reason.", "reason"),
		turnCert:     d("turn_certificate_expiry_timestamp_seconds", "When the TURNS certificate in use expires (Unix seconds); 0 when TURN over TLS is off."),
		recordings:   d("recordings", "Students being recorded now."),
		recBytes:     d("recorded_bytes_total", "Bytes written to recording files."),
		recFailures:  d("recording_failures_total", "Student recordings stopped by a write error (disk full, say)."),
		recDropped:   d("recording_dropped_packets_total", "RTP packets a recording writer could not keep up with."),
		webhooks:     d("webhook_events_total", "Audit events by webhook outcome: delivered, failed (given up), dropped (queue full).", "result"),
		nacksSent:    d("nacks_sent_total", "RTP packets the node asked publishers to resend (generic NACK)."),
		dropped:      d("media_dropped_packets_total", "Packets the media plane did not send, by reason: an ICE-TCP subscriber's backlog (video_backlog, then audio_backlog), a full UDP send buffer (socket_full), a stalled ICE-TCP write (tcp_stalled), no connection yet or any more (not_connected), too large.", "reason"),
		rejected:     d("media_rejected_packets_total", "Datagrams the media plane refused, by reason: SRTP authentication or replay (srtp), an address no session validated (unknown_source), an SSRC no SDP places (unknown_ssrc), a check with wrong credentials (stun_auth), malformed.", "reason"),
		dtlsFailures: d("dtls_failures_total", "DTLS handshakes that failed."),
		sessions:     d("media_sessions", "Media sessions (one per connected participant) on this node."),
	}
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rooms, c.participants, c.tracks, c.packets, c.bytes, c.lost,
		c.nacks, c.retransmits, c.plis, c.layers, c.turnAllocs, c.turnBytes, c.turnRefused, c.turnCert,
		c.recordings, c.recBytes, c.recFailures, c.recDropped, c.webhooks,
		c.nacksSent, c.dropped, c.rejected, c.dtlsFailures, c.sessions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	var r RoomStats
	if c.cfg.Rooms != nil {
		r = c.cfg.Rooms()
	}
	gauge(c.rooms, float64(r.Rooms))
	gauge(c.participants, float64(r.Students), "student")
	gauge(c.participants, float64(r.Proctors), "proctor")

	var m MediaStats
	if c.cfg.Media != nil {
		m = c.cfg.Media()
	}
	gauge(c.tracks, float64(m.AudioTracksIn), "audio", "in")
	gauge(c.tracks, float64(m.VideoTracksIn), "video", "in")
	gauge(c.tracks, float64(m.AudioTracksOut), "audio", "out")
	gauge(c.tracks, float64(m.VideoTracksOut), "video", "out")
	counter(c.packets, m.PacketsIn, "in")
	counter(c.packets, m.PacketsOut, "out")
	counter(c.bytes, m.BytesIn, "in")
	counter(c.bytes, m.BytesOut, "out")
	counter(c.lost, m.PacketsLost)
	counter(c.nacks, m.NACKs)
	counter(c.retransmits, m.Retransmits)
	counter(c.plis, m.PLIs)
	counter(c.layers, m.LayerSwitches)
	counter(c.nacksSent, m.NACKsSent)
	for _, reason := range DroppedReasons {
		counter(c.dropped, m.Dropped[reason], reason)
	}
	for _, reason := range RejectedReasons {
		counter(c.rejected, m.Rejected[reason], reason)
	}
	counter(c.dtlsFailures, m.DTLSFailures)
	gauge(c.sessions, float64(m.Sessions))

	var t TURNStats
	if c.cfg.TURN != nil {
		t = c.cfg.TURN()
	}
	gauge(c.turnAllocs, float64(t.Allocations))
	counter(c.turnBytes, t.RelayedBytes)
	for _, reason := range turnRefusalReasons {
		counter(c.turnRefused, t.Refused[reason], reason)
	}
	expiry := 0.0
	if !t.CertNotAfter.IsZero() {
		expiry = float64(t.CertNotAfter.Unix())
	}
	gauge(c.turnCert, expiry)

	var rec RecordingStats
	if c.cfg.Recording != nil {
		rec = c.cfg.Recording()
	}
	gauge(c.recordings, float64(rec.Active))
	counter(c.recBytes, rec.Bytes)
	counter(c.recFailures, rec.Failures)
	counter(c.recDropped, rec.Dropped)

	var wh WebhookStats
	if c.cfg.Webhook != nil {
		wh = c.cfg.Webhook()
	}
	counter(c.webhooks, wh.Delivered, "delivered")
	counter(c.webhooks, wh.Failed, "failed")
	counter(c.webhooks, wh.Dropped, "dropped")
}
