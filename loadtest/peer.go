package loadtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/rtcp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"
)

// peerKit is what every synthetic peer of a run shares: one webrtc.API
// (its interceptor registry builds a fresh chain for each
// PeerConnection) and one DTLS certificate, so a join costs no key
// generation.
//
// The peers do not share a UDP socket. The node serves every
// PeerConnection on one UDP port and, past the first STUN check, tells
// its peers apart by their remote address alone (DTLS and SRTP carry no
// ICE username); so do pion's muxes. Two client peers behind one socket
// would be one 5-tuple, and the node would give both peers' packets to
// whichever it saw first. Each peer therefore gets its own socket on
// 127.0.0.1, as each browser tab has; sockets cost file descriptors and a
// parked reader goroutine each, not CPU per packet (one send or receive
// per packet either way).
//
// The interceptors are pion's defaults (NACK generator and responder,
// RTCP reports, simulcast header extensions, TWCC feedback) without the
// stats interceptor: it feeds GetStats, which nothing here reads, and
// cost ~5% of the load generator's CPU per packet.
type peerKit struct {
	api  *webrtc.API
	cert webrtc.Certificate
}

// newPeerKit builds the shared API. nacks counts the packets proctors
// ask the node to retransmit.
func newPeerKit(log *slog.Logger, nacks *atomic.Int64) (*peerKit, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certificate key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	// Loopback only: host candidates on 127.0.0.1, no mDNS, UDP over
	// IPv4. Media never leaves this host.
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("net: %w", err)
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: log}
	se.SetNet(bufferedNet{Net: std})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})

	m, err := newMediaEngine()
	if err != nil {
		return nil, err
	}
	// The NACK counter goes first, so the writer pion's NACK generator
	// writes through (built later in the chain) passes it.
	registry := &interceptor.Registry{}
	registry.Add(nackCounterFactory{n: nacks})
	if err := webrtc.ConfigureNack(m, registry); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	if err := webrtc.ConfigureRTCPReports(registry); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	if err := webrtc.ConfigureTWCCSender(m, registry); err != nil {
		return nil, fmt.Errorf("interceptors: %w", err)
	}
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(registry))
	return &peerKit{api: api, cert: *cert}, nil
}

// peerSocketBuffer is each peer socket's kernel receive buffer. A
// proctor's socket takes every student of its room, ~2,000 packets a
// second for 25; the default ~200 KiB holds ~100 ms of that, less than
// a scheduling hiccup of a busy load generator. The kernel caps it at
// net.core.rmem_max, and allocates it only as packets queue.
const peerSocketBuffer = 1 << 20

// bufferedNet is the standard network with larger receive buffers on
// the UDP sockets ICE opens for its host candidates.
type bufferedNet struct{ *stdnet.Net }

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err == nil {
		_ = c.SetReadBuffer(peerSocketBuffer)
	}
	return c, err
}

// newMediaEngine offers what the synthetic peers send and receive: VP8
// and Opus, fewer codecs than pion's defaults so a proctor's 50-m-line
// SDP stays small. It offers no RTX (RFC 4588): pion's NACK responder
// builds an RTX packet by copying the original header, rid extension
// included, where a browser would write a repaired-rid, and the node
// would take the repair stream for a new simulcast layer. Without RTX,
// retransmissions go on the media SSRC with their original sequence
// numbers, both upstream (the student answers the node's NACKs) and
// downstream (the node answers the proctors').
func newMediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"}, {Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"}}
	for _, c := range []struct {
		p    webrtc.RTPCodecParameters
		kind webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
	} {
		if err := m.RegisterCodec(c.p, c.kind); err != nil {
			return nil, fmt.Errorf("register %s: %w", c.p.MimeType, err)
		}
	}
	return m, nil
}

// newPeerConnection makes one synthetic peer's PeerConnection.
func (k *peerKit) newPeerConnection() (*webrtc.PeerConnection, error) {
	return k.api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{k.cert}})
}

// nackCounterFactory builds the interceptor that counts the sequence
// numbers each peer's NACKs ask for (RFC 4585 §6.2.1).
type nackCounterFactory struct{ n *atomic.Int64 }

func (f nackCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackCounter{n: f.n}, nil
}

type nackCounter struct {
	interceptor.NoOp
	n *atomic.Int64
}

// BindRTCPWriter counts outgoing NACKs and passes everything on.
func (c *nackCounter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		for _, p := range pkts {
			if nack, ok := p.(*rtcp.TransportLayerNack); ok {
				for _, pair := range nack.Nacks {
					c.n.Add(int64(1 + bits.OnesCount16(uint16(pair.LostPackets))))
				}
			}
		}
		return w.Write(pkts, attrs)
	})
}

// pionLogs bridges pion's loggers to slog. pion's errors during a run
// are mostly teardown noise (closed pipes) and its warnings more so:
// errors go to Info and warnings to Debug; the rest is dropped.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (pionLogger) Trace(string)          {}
func (pionLogger) Tracef(string, ...any) {}
func (pionLogger) Debug(string)          {}
func (pionLogger) Debugf(string, ...any) {}
func (pionLogger) Info(string)           {}
func (pionLogger) Infof(string, ...any)  {}
func (l pionLogger) Warn(msg string)     { l.log.Debug(msg) }
func (l pionLogger) Warnf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}
func (l pionLogger) Error(msg string) { l.log.Info(msg) }
func (l pionLogger) Errorf(format string, args ...any) {
	l.log.Info(fmt.Sprintf(format, args...))
}
