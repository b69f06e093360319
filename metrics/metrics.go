package metrics

import (
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "invigil"

// RoomStats is the node's occupancy at scrape time.
type RoomStats struct {
	Rooms, Students, Proctors int
}

// MediaStats is the media plane's counters at scrape time; the counts are
// cumulative since the process started.
type MediaStats struct {
	PacketsIn, BytesIn, PacketsOut, BytesOut uint64
	PacketsLost, NACKs, Retransmits, PLIs    uint64
	// NACKsSent counts packets the node asked publishers to resend.
	NACKsSent     uint64
	LayerSwitches uint64
	// Dropped counts packets the node did not send, by reason
	// (DroppedReasons).
	Dropped map[string]uint64
	// Rejected counts datagrams the node refused, by reason
	// (RejectedReasons).
	Rejected map[string]uint64
	// DTLSFailures counts failed handshakes.
	DTLSFailures                   uint64
	Sessions                       int64
	AudioTracksIn, VideoTracksIn   int64
	AudioTracksOut, VideoTracksOut int64
}

// DroppedReasons are the media plane's reasons for not sending a packet:
// an ICE-TCP subscriber's backlog past its video or audio budget (video
// then waits for a keyframe), a full UDP send buffer, a stalled ICE-TCP
// write, a session not (or no longer) connected, a packet too large.
var DroppedReasons = []string{"video_backlog", "audio_backlog", "socket_full", "tcp_stalled", "not_connected", "too_large"}

// RejectedReasons are why the media plane refused a datagram: SRTP
// authentication or replay, an address no session validated, an SSRC a
// session's SDP does not place, a check with wrong credentials, a
// datagram that does not parse.
var RejectedReasons = []string{"srtp", "unknown_source", "unknown_ssrc", "stun_auth", "malformed"}

// TURNStats is the embedded TURN server's state at scrape time.
type TURNStats struct {
	Allocations  int
	RelayedBytes uint64
	// Refused counts refused requests by reason (bad_credentials,
	// expired, forbidden_peer, quota, bandwidth).
	Refused map[string]uint64
	// CertNotAfter is when the TURNS certificate in use expires; zero
	// when TURN over TLS is off.
	CertNotAfter time.Time
}

// RecordingStats is the recorder's state at scrape time.
type RecordingStats struct {
	Active   int
	Bytes    uint64
	Failures uint64
	Dropped  uint64
}

// WebhookStats are the webhook's delivery counters.
type WebhookStats struct {
	Delivered, Failed, Dropped uint64
}

// Config sets up the registry.
type Config struct {
	Version  string
	Revision string
	// MessageTypes are the client message types (signaling's
	// ClientMessageTypes): the values of the messages' type label
	// besides "invalid", so its cardinality stays bounded.
	MessageTypes []string
}

// Sources say where the scrape-time figures come from, once the
// components that keep them exist. Nil functions report zeros (e.g.
// TURN when it is disabled).
type Sources struct {
	Rooms     func() RoomStats
	Media     func() MediaStats
	TURN      func() TURNStats
	Recording func() RecordingStats
	Webhook   func() WebhookStats
	// Trail is the audit spool (cluster mode); nil: no invigil_trail_*.
	Trail func() TrailStats
}

// Metrics is a node's Prometheus registry and the collectors in it.
type Metrics struct {
	reg *prometheus.Registry

	messages    map[string][2]prometheus.Counter // by type: [error, ok]
	websockets  prometheus.Gauge
	joinToMedia prometheus.Histogram
	ice         *prometheus.CounterVec
	rtt, jitter prometheus.Histogram
	redisErrors prometheus.Counter
	refusals    map[string]prometheus.Counter
}

// refusalReasons are the values of invigil_refusals_total's reason label:
// connection limits, then the wire codes of refused requests. Anything
// else is counted as "other".
var refusalReasons = []string{
	"connections_per_ip", "connection_rate", "handshake", "rate_limited",
	"token_missing", "token_invalid", "token_expired", "token_not_yet_valid", "role_unknown", "room_mismatch",
	"room_full", "node_full", "too_many_rooms", "forbidden", "too_many_candidates", "too_many_tracks",
	"sdp_too_large", "too_large", "join_timeout", "slow_consumer", "draining", "other",
}

// candidateTypes are the values of the candidate_type label.
var candidateTypes = []string{"host", "srflx", "prflx", "relay", "unknown"}

// New builds the registry: Invigil's metrics, the Go runtime and process
// collectors, and invigil_build_info.
func New(cfg Config) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{reg: reg, messages: make(map[string][2]prometheus.Counter), refusals: make(map[string]prometheus.Counter)}
	refusals := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "refusals_total",
		Help: "Connections and requests refused by policy: per-address limits, message rate, bad tokens, forbidden requests, full rooms.",
	}, []string{"reason"})
	for _, r := range refusalReasons {
		m.refusals[r] = refusals.WithLabelValues(r)
	}

	msgs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "signaling_messages_total",
		Help: "Signaling messages received from clients, by type and result (ok or error).",
	}, []string{"type", "result"})
	for _, t := range append(slices.Clone(cfg.MessageTypes), "invalid") {
		m.messages[t] = [2]prometheus.Counter{msgs.WithLabelValues(t, "error"), msgs.WithLabelValues(t, "ok")}
	}
	m.websockets = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "websocket_connections",
		Help: "Open signaling WebSocket connections.",
	})
	m.joinToMedia = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "join_duration_seconds",
		Help:    "Time from a participant's join message to its first media packet forwarded to a proctor.",
		Buckets: []float64{.1, .25, .5, .75, 1, 1.5, 2, 3, 5, 10, 30},
	})
	m.ice = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "ice_connections_total",
		Help: "Media connections that came up (result=success, by the client's candidate type) or failed.",
	}, []string{"result", "candidate_type"})
	for _, ct := range candidateTypes {
		m.ice.WithLabelValues("success", ct)
	}
	m.ice.WithLabelValues("failure", "unknown")
	m.rtt = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "rtt_seconds",
		Help:    "Round-trip time to subscribers, from their RTCP receiver reports.",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .15, .25, .5, 1, 2},
	})
	m.jitter = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Name: "jitter_seconds",
		Help:    "Interarrival jitter at subscribers, from their RTCP receiver reports.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
	})
	m.redisErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "redis_errors_total",
		Help: "Failed Redis operations (cluster mode only).",
	})
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": cfg.Version, "revision": cfg.Revision, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)

	reg.MustRegister(
		msgs, refusals, m.websockets, m.joinToMedia, m.ice, m.rtt, m.jitter, m.redisErrors, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// AddSources adds the scrape-time figures of s to the registry. A node
// calls it once, when its components exist and before it serves.
func (m *Metrics) AddSources(s Sources) {
	m.reg.MustRegister(newSnapshotCollector(s))
	if s.Trail != nil {
		m.reg.MustRegister(newTrailCollector(s.Trail))
	}
}

// Handler serves the exposition format on GET /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Message counts one signaling message (signaling.Observer).
func (m *Metrics) Message(typ string, ok bool) {
	c, found := m.messages[typ]
	if !found {
		c = m.messages["invalid"]
	}
	if ok {
		c[1].Inc()
	} else {
		c[0].Inc()
	}
}

// WebSocket tracks open connections (signaling.Observer).
func (m *Metrics) WebSocket(delta int) { m.websockets.Add(float64(delta)) }

// JoinToMedia observes one join's time to first media (signaling.Observer).
func (m *Metrics) JoinToMedia(d time.Duration) { m.joinToMedia.Observe(d.Seconds()) }

// ICEConnection counts a media connection's outcome (signaling.Observer).
func (m *Metrics) ICEConnection(ok bool, candidateType string) {
	if !ok {
		m.ice.WithLabelValues("failure", "unknown").Inc()
		return
	}
	known := false
	for _, ct := range candidateTypes {
		known = known || ct == candidateType
	}
	if !known {
		candidateType = "unknown"
	}
	m.ice.WithLabelValues("success", candidateType).Inc()
}

// ReceptionReport observes one subscriber receiver report (sfu.Observer).
// A zero RTT means the report carried no sender-report reference.
func (m *Metrics) ReceptionReport(rtt, jitter time.Duration) {
	if rtt > 0 {
		m.rtt.Observe(rtt.Seconds())
	}
	m.jitter.Observe(jitter.Seconds())
}

// Refused counts a refusal by reason (signaling.Observer).
func (m *Metrics) Refused(reason string) {
	c, ok := m.refusals[reason]
	if !ok {
		c = m.refusals["other"]
	}
	c.Inc()
}

// RedisError counts a failed Redis operation.
func (m *Metrics) RedisError() { m.redisErrors.Inc() }
