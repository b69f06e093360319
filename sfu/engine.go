package sfu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/logging"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

const (
	// DefaultPLIInterval is the least time between two keyframe requests
	// to one publisher track. A keyframe costs 5–10 times a delta frame;
	// a storm of late proctors must not turn into a storm of keyframes.
	DefaultPLIInterval = 500 * time.Millisecond

	// iceDisconnectedTimeout is how long a connected peer may send no
	// STUN or media before its connection counts as disconnected (the
	// audit trail's disconnect). pion's 5 s default, checked every 2 s,
	// noticed a Wi-Fi drop only after up to 7 s; a browser sends media
	// every 20–33 ms and consent checks every ~1 s, so 3 s of silence is
	// a lost path.
	iceDisconnectedTimeout = 3 * time.Second
	// iceFailedTimeout is how long after that the connection is given
	// up (the session ends; the client must join again).
	iceFailedTimeout = 25 * time.Second
	// iceKeepalive is how often the server sends its own checks, so the
	// state is re-evaluated at that pace.
	iceKeepalive = time.Second

	// tcpReadBuffer is how many packets the ICE-TCP mux buffers per
	// connection before its reader blocks (pion's own recommended value).
	tcpReadBuffer = 8
)

// Config sets up an Engine. The sockets are made by the caller, so tests
// pass 127.0.0.1:0 and production passes the configured ports.
type Config struct {
	// UDP is the one socket every PeerConnection's ICE shares.
	UDP net.PacketConn
	// TCP, if not nil, accepts ICE-TCP (RFC 6544, passive) for clients
	// whose networks block UDP.
	TCP net.Listener
	// AdvertiseIPs, if set, replace the socket's addresses in host
	// candidates (1:1 NAT, as on cloud VMs with a public IP).
	AdvertiseIPs []string
	// IncludeLoopback lets host candidates carry loopback addresses; set
	// when the node advertises 127.0.0.1 (tests, --dev).
	IncludeLoopback bool
	// PLIInterval throttles keyframe requests per published track.
	PLIInterval time.Duration
	// Observer, if set, receives RTT and jitter from receiver reports.
	Observer Observer
	Logger   *slog.Logger
	// PionLogs receives the lines of the pion libraries the engine runs
	// (cmd/invigil bridges them to slog); nil discards them.
	PionLogs logging.LoggerFactory
}

// Engine makes PeerConnections that share the configured sockets, codecs
// and settings. It is safe for concurrent use.
type Engine struct {
	settings webrtc.SettingEngine
	// pubMedia is offered to publishers: transport-wide CC feedback lets
	// the browser's own congestion control pace its upload. subMedia is
	// offered to subscribers: REMB only (see newAPI).
	pubMedia, subMedia *webrtc.MediaEngine
	udpMux             ice.UDPMux
	tcpMux             ice.TCPMux
	log                *slog.Logger
	logs               logging.LoggerFactory
	pliGap             time.Duration
	obs                Observer
	counter            counters

	// tracksMu guards tracks: the published tracks being read now, whose
	// layers keep their own forwarding counters (see layer). An ended
	// track's counts are folded into counter, under tracksMu, so a
	// snapshot counts every packet once.
	tracksMu sync.Mutex
	tracks   map[*Track]struct{}
}

// New builds an Engine over cfg's sockets. Closing the Engine closes them.
func New(cfg Config) (*Engine, error) {
	if cfg.UDP == nil {
		return nil, errors.New("sfu: Config.UDP is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PLIInterval <= 0 {
		cfg.PLIInterval = DefaultPLIInterval
	}
	logs := cfg.PionLogs
	if logs == nil {
		logs = &logging.DefaultLoggerFactory{Writer: io.Discard, DefaultLogLevel: logging.LogLevelDisabled, ScopeLevels: map[string]logging.LogLevel{}}
	}
	e := &Engine{log: cfg.Logger, logs: logs, pliGap: cfg.PLIInterval, obs: cfg.Observer, tracks: map[*Track]struct{}{}}

	var err error
	if e.pubMedia, err = newMediaEngine(true); err != nil {
		return nil, err
	}
	if e.subMedia, err = newMediaEngine(false); err != nil {
		return nil, err
	}

	settings := webrtc.SettingEngine{LoggerFactory: logs}
	e.udpMux = webrtc.NewICEUDPMux(logs.NewLogger("udpmux"), cfg.UDP)
	settings.SetICEUDPMux(e.udpMux)
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if cfg.TCP != nil {
		e.tcpMux = webrtc.NewICETCPMux(logs.NewLogger("tcpmux"), cfg.TCP, tcpReadBuffer)
		settings.SetICETCPMux(e.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	settings.SetNetworkTypes(networks)
	// A server only accepts ICE-TCP; it never dials out to clients.
	settings.DisableActiveTCP(true)
	if len(cfg.AdvertiseIPs) > 0 {
		settings.SetNAT1To1IPs(cfg.AdvertiseIPs, webrtc.ICECandidateTypeHost)
	}
	settings.SetIncludeLoopbackCandidate(cfg.IncludeLoopback)
	settings.SetICETimeouts(iceDisconnectedTimeout, iceFailedTimeout, iceKeepalive)
	// Browsers hide their host addresses behind mDNS names; the server
	// learns the real address as a peer-reflexive candidate from the first
	// STUN check instead, and opens no multicast socket.
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// AEAD_AES_128_GCM first: with AES-NI it costs ~1 µs per packet for
	// encrypt+decrypt against ~4.6 µs for AES_CM_HMAC_SHA1_80 (measured on
	// the project's machine kind, docs/benchmarks.md),
	// and Chrome offers both.
	settings.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)
	e.settings = settings
	return e, nil
}

// newAPI builds one PeerConnection's API with its own interceptor registry.
//
// A publisher gets: NACK generation for the server's own upstream losses,
// RTCP receiver and sender reports, and transport-wide CC feedback so the
// browser's congestion control can pace its upload.
//
// A subscriber gets only RTCP reports. Retransmissions come from the
// SFU's per-layer caches (DownTrack.resend), not pion's NACK responder,
// which would copy every packet once per subscriber. Downlink bandwidth
// comes from the browser's REMB, read off RTCP, so nothing per packet is
// spent on send-side estimation.
func (e *Engine) newAPI(publish bool) (*webrtc.API, error) {
	registry := &interceptor.Registry{}
	recv, err := report.NewReceiverInterceptor(report.WithReceiverLoggerFactory(e.logs))
	if err != nil {
		return nil, err
	}
	send, err := report.NewSenderInterceptor(report.WithSenderLoggerFactory(e.logs))
	if err != nil {
		return nil, err
	}
	registry.Add(headerOnceFactory{}) // first: innermost, so it runs before the others
	registry.Add(recv)
	registry.Add(send)
	media := e.subMedia
	if publish {
		media = e.pubMedia
		gen, err := nack.NewGeneratorInterceptor(nack.WithGeneratorLoggerFactory(e.logs))
		if err != nil {
			return nil, err
		}
		fb, err := twcc.NewSenderInterceptor(twcc.WithLoggerFactory(e.logs))
		if err != nil {
			return nil, err
		}
		registry.Add(gen)
		registry.Add(fb)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(media), webrtc.WithInterceptorRegistry(registry), webrtc.WithSettingEngine(e.settings)), nil
}

// Stats returns a snapshot of the Engine's counters: the shared ones and
// the forwarding counters of every live track's layers, summed now.
func (e *Engine) Stats() Stats {
	e.tracksMu.Lock()
	defer e.tracksMu.Unlock()
	s := e.counter.snapshot()
	for t := range e.tracks {
		t.count(&s)
		if t.kind == webrtc.RTPCodecTypeVideo {
			s.VideoTracksIn++
		} else {
			s.AudioTracksIn++
		}
	}
	return s
}

// addTrack registers a track whose layers are being read.
func (e *Engine) addTrack(t *Track) {
	e.tracksMu.Lock()
	e.tracks[t] = struct{}{}
	e.tracksMu.Unlock()
}

// retireTrack folds an ended track's counts into the shared counters.
func (e *Engine) retireTrack(t *Track) {
	e.tracksMu.Lock()
	defer e.tracksMu.Unlock()
	if _, ok := e.tracks[t]; !ok {
		return
	}
	delete(e.tracks, t)
	var s Stats
	t.count(&s)
	e.counter.packetsIn.Add(s.PacketsIn)
	e.counter.bytesIn.Add(s.BytesIn)
	e.counter.packetsOut.Add(s.PacketsOut)
	e.counter.bytesOut.Add(s.BytesOut)
}

// Close closes the shared sockets. Peers should be closed first.
func (e *Engine) Close() error {
	var errs []error
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	errs = append(errs, e.udpMux.Close())
	return errors.Join(errs...)
}

// newMediaEngine offers what browsers publish and every proctor's
// browser can decode: VP8 and constrained-baseline H.264 for video, Opus
// for audio. Forwarding never transcodes, so a codec missing here is one a
// student cannot publish. Publishers also get the simulcast header
// extensions (mid, rid, repaired rid) and transport-wide CC; subscribers
// get REMB instead.
func newMediaEngine(publish bool) (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := registerCodecs(m, publish); err != nil {
		return nil, fmt.Errorf("sfu: register codecs: %w", err)
	}
	if !publish {
		return m, nil
	}
	for _, uri := range []string{sdp.SDESMidURI, sdp.SDESRTPStreamIDURI, sdp.SDESRepairRTPStreamIDURI, sdp.TransportCCURI} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	for _, uri := range []string{sdp.SDESMidURI, sdp.TransportCCURI} {
		if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: uri}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func registerCodecs(m *webrtc.MediaEngine, publish bool) error {
	videoFB := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
	}
	var audioFB []webrtc.RTCPFeedback
	if publish {
		videoFB = append(videoFB, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
		audioFB = append(audioFB, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC})
	} else {
		videoFB = append(videoFB, webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBGoogREMB})
	}
	video := []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFB}, PayloadType: 102},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=102"}, PayloadType: 103},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f", RTCPFeedback: videoFB}, PayloadType: 104},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=104"}, PayloadType: 105},
	}
	for _, c := range video {
		if err := m.RegisterCodec(c, webrtc.RTPCodecTypeVideo); err != nil {
			return err
		}
	}
	opus := webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: audioFB},
		PayloadType: 111,
	}
	return m.RegisterCodec(opus, webrtc.RTPCodecTypeAudio)
}
