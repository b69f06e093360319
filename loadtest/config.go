package loadtest

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
)

// Bounds of one run. A load run is a tool pointed at a node on purpose;
// the caps keep a typo (one zero too many) from becoming a runaway.
const (
	// MaxPeers bounds students plus proctors: 2,000 is four times the
	// issue-8 target of 500 students, and about what one core of pion
	// client can drive (each peer holds a few goroutines and tickers).
	MaxPeers = 2000
	// MaxDuration bounds one run; an hour covers any soak worth doing
	// from the command line.
	MaxDuration = time.Hour
	// minDuration leaves time for at least one keyframe interval.
	minDuration = 2 * time.Second
	// DefaultFocusEvery is how often a synthetic proctor focuses the
	// next student: "every few seconds", as a proctor scanning a grid.
	DefaultFocusEvery = 5 * time.Second
	// maxSecretBytes bounds the API secret: an HS256 key needs no more.
	maxSecretBytes = 4096
	// minSecretBytes matches the server's own floor for the API secret
	// (RFC 7518 §3.2: an HS256 key at least as long as the hash).
	minSecretBytes = 32
)

// Clients: how the synthetic participants reach the node.
const (
	// ClientLean is the load generator's own transport (lean.go): one
	// shared socket, a few goroutines for everyone. The default.
	ClientLean = "lean"
	// ClientPion is a pion PeerConnection per participant: an
	// independent implementation to check the lean client against.
	ClientPion = "pion"
)

// Config describes one load run.
type Config struct {
	// URL is the node's base http(s) URL, e.g. http://127.0.0.1:7880;
	// signaling goes to ws(s)://host/…/v1/rtc. Its host must be
	// loopback: media leaves only over loopback, and one-way delay is
	// measured against this host's clock.
	URL string
	// APISecret signs the join tokens (HS256), as the node's --api-secret.
	APISecret string
	// Rooms, StudentsPerRoom and ProctorsPerRoom size the run.
	Rooms, StudentsPerRoom, ProctorsPerRoom int
	// Duration is the whole run, from the first join to the stop of
	// media; Ramp (< Duration) spreads the students' joins over its
	// start: the exam-start join storm. Proctors join first.
	Duration, Ramp time.Duration
	// RoomPrefix starts every room name and identity; empty: "load-"
	// and a random run id, so two runs never share a room.
	RoomPrefix string
	// SingleLayer publishes one video layer instead of the simulcast
	// layers of layers.go (for a node or a comparison without simulcast).
	SingleLayer bool
	// FocusEvery is how often each proctor focuses the next student of
	// its room; 0 never focuses. Ignored with SingleLayer.
	FocusEvery time.Duration
	// Client is ClientLean (also when empty) or ClientPion.
	Client string
	// ServerPID, when not 0, is the local node's process: its CPU time
	// and RSS are read from /proc at the start and end of the run.
	ServerPID int
	// Logger gets progress at Info and participant failures at Debug;
	// nil discards.
	Logger *slog.Logger
}

// Peers is the number of synthetic participants the run makes.
func (c Config) Peers() int { return c.Rooms * (c.StudentsPerRoom + c.ProctorsPerRoom) }

// Validate checks the bounds and the target.
func (c Config) Validate() error {
	if _, err := signalURL(c.URL); err != nil {
		return err
	}
	switch {
	case len(c.APISecret) < minSecretBytes:
		return fmt.Errorf("%w: the API secret must be at least %d bytes", ErrConfig, minSecretBytes)
	case len(c.APISecret) > maxSecretBytes:
		return fmt.Errorf("%w: the API secret is longer than %d bytes", ErrConfig, maxSecretBytes)
	case c.Rooms < 1 || c.StudentsPerRoom < 1 || c.ProctorsPerRoom < 0:
		return fmt.Errorf("%w: need at least 1 room and 1 student per room (proctors ≥ 0)", ErrConfig)
	case c.Rooms > MaxPeers || c.StudentsPerRoom > MaxPeers || c.ProctorsPerRoom > MaxPeers || c.Peers() > MaxPeers:
		return fmt.Errorf("%w: %d rooms × (%d students + %d proctors) is more than %d peers",
			ErrConfig, c.Rooms, c.StudentsPerRoom, c.ProctorsPerRoom, MaxPeers)
	case c.Duration < minDuration || c.Duration > MaxDuration:
		return fmt.Errorf("%w: duration %s is outside %s–%s", ErrConfig, c.Duration, minDuration, MaxDuration)
	case c.Ramp < 0 || c.Ramp >= c.Duration:
		return fmt.Errorf("%w: ramp %s must be ≥ 0 and shorter than the duration %s", ErrConfig, c.Ramp, c.Duration)
	case c.FocusEvery < 0:
		return fmt.Errorf("%w: negative focus interval", ErrConfig)
	case c.Client != "" && c.Client != ClientLean && c.Client != ClientPion:
		return fmt.Errorf("%w: client %q: want %s or %s", ErrConfig, c.Client, ClientLean, ClientPion)
	case c.ServerPID < 0:
		return fmt.Errorf("%w: negative server pid", ErrConfig)
	case len(c.RoomPrefix) > 64 || strings.ContainsAny(c.RoomPrefix, " \t\r\n/"):
		return fmt.Errorf("%w: room prefix must be ≤ 64 bytes without spaces or slashes", ErrConfig)
	}
	return nil
}

// signalURL turns the node's base URL into its signaling WebSocket URL,
// refusing anything but http(s) on a loopback host.
func signalURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("%w: url: %v", ErrConfig, err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("%w: url %q: want http:// or https://", ErrConfig, base)
	}
	if !loopbackHost(u.Hostname()) {
		return "", fmt.Errorf("%w: url host %q is not loopback: the load generator's media is loopback-only and one-way delay needs the node's clock, so run it on the node's host", ErrConfig, u.Hostname())
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w: url %q: no user, query or fragment", ErrConfig, base)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/rtc"
	u.RawPath = ""
	return u.String(), nil
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
