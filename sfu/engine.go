package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

const (
	// DefaultPLIInterval is the least time between two keyframe requests
	// to one publisher track. A keyframe costs 5–10 times a delta frame;
	// a storm of late proctors must not turn into a storm of keyframes.
	DefaultPLIInterval = 500 * time.Millisecond

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
}

// Engine makes PeerConnections that share the configured sockets, codecs
// and interceptors. It is safe for concurrent use.
type Engine struct {
	api     *webrtc.API
	udpMux  ice.UDPMux
	tcpMux  ice.TCPMux
	log     *slog.Logger
	pliGap  time.Duration
	obs     Observer
	counter counters
}

// New builds an Engine over cfg's sockets. Closing the Engine closes them.
func New(cfg Config) (*Engine, error) {
	if cfg.UDP == nil {
		return nil, errors.New("sfu: Config.UDP is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PLIInterval <= 0 {
		cfg.PLIInterval = DefaultPLIInterval
	}
	logs := LoggerFactory{Logger: cfg.Logger}

	media := &webrtc.MediaEngine{}
	if err := registerCodecs(media); err != nil {
		return nil, fmt.Errorf("sfu: register codecs: %w", err)
	}
	// The registry holds factories; pion builds a fresh interceptor chain
	// from it for every PeerConnection, so no state is shared between them.
	registry := &interceptor.Registry{}
	e := &Engine{log: cfg.Logger, pliGap: cfg.PLIInterval, obs: cfg.Observer}
	// First in the chain is nearest the transport: it sees the NACK
	// responder's retransmissions as well as forwarded packets.
	registry.Add(retransmitCounterFactory{count: &e.counter.retransmits})
	if err := webrtc.RegisterDefaultInterceptors(media, registry); err != nil {
		return nil, fmt.Errorf("sfu: register interceptors: %w", err)
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
	// Browsers hide their host addresses behind mDNS names; the server
	// learns the real address as a peer-reflexive candidate from the first
	// STUN check instead, and opens no multicast socket.
	settings.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// AEAD_AES_128_GCM first: with AES-NI it costs ~1 µs per packet for
	// encrypt+decrypt against ~4.6 µs for AES_CM_HMAC_SHA1_80 (NOTES.md),
	// and Chrome offers both.
	settings.SetSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80)

	e.api = webrtc.NewAPI(
		webrtc.WithMediaEngine(media),
		webrtc.WithInterceptorRegistry(registry),
		webrtc.WithSettingEngine(settings),
	)
	return e, nil
}

// Stats returns a snapshot of the Engine's counters.
func (e *Engine) Stats() Stats { return e.counter.snapshot() }

// Close closes the shared sockets. Peers should be closed first.
func (e *Engine) Close() error {
	var errs []error
	if e.tcpMux != nil {
		errs = append(errs, e.tcpMux.Close())
	}
	errs = append(errs, e.udpMux.Close())
	return errors.Join(errs...)
}

// registerCodecs offers what browsers publish and every proctor's browser
// can decode: VP8 and constrained-baseline H.264 for video, Opus for audio.
// Forwarding never transcodes, so a codec missing here is one a student
// cannot publish.
func registerCodecs(m *webrtc.MediaEngine) error {
	videoFB := []webrtc.RTCPFeedback{
		{Type: webrtc.TypeRTCPFBGoogREMB},
		{Type: webrtc.TypeRTCPFBTransportCC},
		{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		{Type: webrtc.TypeRTCPFBNACK},
		{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
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
			SDPFmtpLine: "minptime=10;useinbandfec=1", RTCPFeedback: []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBTransportCC}}},
		PayloadType: 111,
	}
	return m.RegisterCodec(opus, webrtc.RTPCodecTypeAudio)
}
