package roomapi

import (
	"time"

	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/sfu"
)

// Participant states of GET /v1/rooms/{room} (docs/http.md).
const (
	StateConnecting   = "connecting"
	StateLive         = "live"
	StateReconnecting = "reconnecting"
	StateStalled      = "stalled"
	StateDegraded     = "degraded"
)

// A connection is degraded, the network's fault rather than the
// camera's, when over the last second more than DegradedLoss of its
// packets were lost (past ~10 % video freezes between keyframes even
// with NACK), or its round trip passes DegradedRTT (retransmissions then
// arrive too late to be played).
const (
	DegradedLoss = 0.10
	DegradedRTT  = 800 * time.Millisecond
)

// statsReader is what the API reads of a participant's media
// connection: the node's *sfu.Peer has it, behind room.Media.
type statsReader interface {
	Stats() sfu.PeerStats
}

// Connection is a participant's connection quality.
type Connection struct {
	// RTTms is the round trip in milliseconds (to the microsecond): from the node's own ICE
	// consent checks (RFC 7675, every 5 s), which every session has,
	// publisher or not; from receiver reports when no check was answered
	// yet. 0 before either.
	RTTms float64 `json:"rtt_ms"`
	// Loss is the share of packets lost over the last second, in 0..1:
	// of what it sends (a student) or what it receives (a proctor).
	Loss float64 `json:"loss"`
	// BitrateKbps is what it sends (a student), or receives (a proctor).
	BitrateKbps uint64 `json:"bitrate_kbps"`
	// CandidateType is how it reached the node: host, srflx, prflx or
	// relay (TURN); empty before it connected.
	CandidateType string `json:"candidate_type,omitempty"`
}

// connection reads m's figures and decides its state.
func connection(m room.Member) (Connection, string) {
	sr, ok := m.Media.(statsReader)
	if !ok {
		return Connection{}, stateOf(m, sfu.PeerStats{}, Connection{})
	}
	st := sr.Stats()
	c := Connection{RTTms: ms(st.RTT), CandidateType: st.CandidateType}
	streams := st.Out
	if m.Role == room.RoleStudent {
		streams = st.In
	}
	var rrRTT time.Duration
	for _, s := range streams {
		c.BitrateKbps += s.BitsPerSecond / 1000
		c.Loss = max(c.Loss, s.FractionLost)
		rrRTT = max(rrRTT, s.RTT)
	}
	for _, s := range st.Out {
		rrRTT = max(rrRTT, s.RTT)
	}
	if c.RTTms == 0 {
		c.RTTms = ms(rrRTT)
	}
	return c, stateOf(m, st, c)
}

// stateOf is m's state: reconnecting while its connection is lost,
// connecting until its media is up (a student: until it published what
// its token requires), stalled while the watchdog holds its camera
// stalled, degraded on a lossy or slow network, else live.
func stateOf(m room.Member, st sfu.PeerStats, c Connection) string {
	switch {
	case m.Reconnecting || st.State == sfu.ConnDisconnected:
		return StateReconnecting
	case st.State != sfu.ConnConnected || !m.Admitted:
		return StateConnecting
	case m.Stalled:
		return StateStalled
	case c.Loss > DegradedLoss || c.RTTms > ms(DegradedRTT):
		return StateDegraded
	}
	return StateLive
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
