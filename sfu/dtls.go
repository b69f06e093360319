package sfu

import (
	"context"
	"crypto/sha1" //nolint:gosec // RFC 8122 §5 names sha-1 among fingerprint hashes; it is only compared, never trusted alone
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/logging"
	"github.com/pion/srtp/v3"
)

// DTLS-SRTP (RFC 5764): the DTLS handshake runs over the session's ICE
// path only to agree on SRTP keys; after it, media never passes through
// pion/dtls. The keys are exported (RFC 5705, label EXTRACTOR-dtls_srtp)
// into two pion/srtp Contexts the packet path uses directly.

const (
	// dtlsHandshakeTimeout bounds one handshake. A browser starts it as
	// soon as ICE connects; 15 s covers its retransmissions (1 s doubling)
	// on a lossy path.
	dtlsHandshakeTimeout = 15 * time.Second
	// dtlsQueue is how many DTLS records wait for the handshake goroutine;
	// a flight is a handful, and a retransmitted one replaces it.
	dtlsQueue = 16
	// srtpReplayWindow is the SRTP replay window (RFC 3711 §3.3.2) in
	// packets: twice the RFC's minimum, a second of reordering of a
	// 1 Mb/s layer. Retransmissions come on their own (RTX) SSRC, so they
	// never need a wider one; and the window is shifted on every packet,
	// so a wider one costs on every packet.
	srtpReplayWindow = 128
	// srtcpReplayWindow is SRTCP's, a few seconds of RTCP.
	srtcpReplayWindow = 128
)

// certificate is the node's DTLS identity: one self-signed ECDSA P-256
// certificate for every session, known to clients only by its fingerprint
// in the SDP (RFC 8122).
type certificate struct {
	tls         tls.Certificate
	fingerprint string // "sha-256 AB:CD:…", the a=fingerprint value
}

func newCertificate() (*certificate, error) {
	c, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, fmt.Errorf("sfu: DTLS certificate: %w", err)
	}
	sum := sha256.Sum256(c.Certificate[0])
	return &certificate{tls: c, fingerprint: "sha-256 " + colonHex(sum[:])}, nil
}

// colonHex is upper-case hex with a colon between bytes (RFC 8122 §5).
func colonHex(b []byte) string {
	s := strings.ToUpper(hex.EncodeToString(b))
	var out strings.Builder
	out.Grow(len(s) + len(s)/2)
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		out.WriteString(s[i : i+2])
	}
	return out.String()
}

// errFingerprint is a DTLS peer certificate that does not match the SDP.
var errFingerprint = errors.New("sfu: DTLS certificate does not match the SDP fingerprint")

// checkFingerprint compares the peer's certificate with an a=fingerprint
// value ("sha-256 AB:CD:…"); RFC 8122 §5 allows several hash functions.
func checkFingerprint(cert []byte, fingerprint string) error {
	algo, value, ok := strings.Cut(strings.TrimSpace(fingerprint), " ")
	if !ok {
		return fmt.Errorf("%w: malformed %q", errFingerprint, fingerprint)
	}
	var h hash.Hash
	switch strings.ToLower(algo) {
	case "sha-1":
		h = sha1.New() //nolint:gosec // see the import
	case "sha-256":
		h = sha256.New()
	case "sha-384":
		h = sha512.New384()
	case "sha-512":
		h = sha512.New()
	default:
		return fmt.Errorf("%w: hash %q not supported", errFingerprint, algo)
	}
	h.Write(cert)
	want := colonHex(h.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToUpper(strings.TrimSpace(value)))) != 1 {
		return errFingerprint
	}
	return nil
}

// dtlsRole says which side of the handshake the node takes (RFC 5763 §5:
// a=setup). The node takes whichever the client leaves it.
type dtlsRole int

const (
	dtlsServer dtlsRole = iota // the client is active (setup:active)
	dtlsClient                 // the client is passive (setup:passive)
)

// dtlsConn adapts one session's ICE path to the net.PacketConn pion/dtls
// handshakes over: the packet path pushes the DTLS records it receives;
// records pion/dtls writes go out on the session's current path.
type dtlsConn struct {
	in     chan []byte
	write  func([]byte) error // sends one datagram on the session's path
	remote net.Addr

	// mu guards deadline and closed.
	mu       sync.Mutex
	deadline time.Time
	wake     chan struct{} // closed and replaced when deadline changes
	closed   chan struct{}
	once     sync.Once
}

var _ net.PacketConn = (*dtlsConn)(nil)

func newDTLSConn(remote net.Addr, write func([]byte) error) *dtlsConn {
	return &dtlsConn{in: make(chan []byte, dtlsQueue), write: write, remote: remote,
		wake: make(chan struct{}), closed: make(chan struct{})}
}

// push hands the handshake one record the packet path received. It never
// blocks: a record that finds the queue full is dropped, and DTLS
// retransmits it (RFC 6347 §4.2.4).
func (c *dtlsConn) push(b []byte) bool {
	select {
	case <-c.closed:
		return false
	default:
	}
	select {
	case c.in <- append([]byte(nil), b...):
		return true
	default:
		return false
	}
}

// ReadFrom implements net.PacketConn for pion/dtls.
func (c *dtlsConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, again, err := c.readOnce(p)
		if !again {
			return n, c.remote, err
		}
	}
}

// readOnce waits for one record, the deadline, close, or a deadline
// change (again: wait anew).
func (c *dtlsConn) readOnce(p []byte) (n int, again bool, err error) {
	c.mu.Lock()
	deadline, wake := c.deadline, c.wake
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return 0, false, errDeadline
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case b := <-c.in:
		return copy(p, b), false, nil
	case <-c.closed:
		return 0, false, net.ErrClosed
	case <-timeout:
		return 0, false, errDeadline
	case <-wake:
		return 0, true, nil
	}
}

// WriteTo implements net.PacketConn: every record goes to the session.
func (c *dtlsConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	select {
	case <-c.closed:
		return 0, net.ErrClosed
	default:
	}
	if err := c.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close unblocks readers; later records are refused.
func (c *dtlsConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// LocalAddr implements net.PacketConn.
func (c *dtlsConn) LocalAddr() net.Addr { return c.remote }

// SetDeadline implements net.PacketConn.
func (c *dtlsConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn; pion's context wrappers
// use it to unblock a read when a context ends.
func (c *dtlsConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.wake)
	c.wake = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes never block.
func (c *dtlsConn) SetWriteDeadline(time.Time) error { return nil }

// errDeadline is a read past its deadline; it is a net.Error timeout,
// which is how pion's wrappers recognise it.
var errDeadline error = deadlineError{}

type deadlineError struct{}

func (deadlineError) Error() string   { return "sfu: dtls read deadline exceeded" }
func (deadlineError) Timeout() bool   { return true }
func (deadlineError) Temporary() bool { return true }

// srtpKeys are a session's SRTP contexts once its handshake is done: rx
// decrypts what the client sends, tx encrypts what the node sends it.
type srtpKeys struct {
	profile srtp.ProtectionProfile
	rx, tx  *srtp.Context
}

// handshake runs the DTLS handshake in role over c and derives the SRTP
// contexts (RFC 5764 §4.2). The peer's certificate must match
// fingerprint, the client's a=fingerprint. The returned conn stays open
// for the session: it answers a client's retransmitted flight and
// receives its close_notify.
func handshake(ctx context.Context, c *dtlsConn, role dtlsRole, cert *certificate, fingerprint string, logs logging.LoggerFactory) (*dtls.Conn, *srtpKeys, error) {
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("%w: no certificate", errFingerprint)
		}
		return checkFingerprint(raw[0], fingerprint)
	}
	var (
		conn *dtls.Conn
		err  error
	)
	profiles := []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}
	switch role {
	case dtlsServer:
		conn, err = dtls.ServerWithOptions(c, c.remote,
			dtls.WithCertificates(cert.tls),
			dtls.WithSRTPProtectionProfiles(profiles...),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
			dtls.WithClientAuth(dtls.RequireAnyClientCert),
			dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(verify),
			dtls.WithLoggerFactory(logs),
		)
	default:
		conn, err = dtls.ClientWithOptions(c, c.remote,
			dtls.WithCertificates(cert.tls),
			dtls.WithSRTPProtectionProfiles(profiles...),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
			dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(verify),
			dtls.WithLoggerFactory(logs),
		)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sfu: dtls: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, dtlsHandshakeTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("sfu: dtls handshake: %w", err)
	}
	keys, err := srtpFromDTLS(conn, role == dtlsClient)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, keys, nil
}

// srtpFromDTLS exports the SRTP master keys of a finished handshake.
func srtpFromDTLS(conn *dtls.Conn, isClient bool) (*srtpKeys, error) {
	dp, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, errors.New("sfu: dtls: the client negotiated no SRTP profile (use_srtp, RFC 5764 §4.1.2)")
	}
	var profile srtp.ProtectionProfile
	switch dp {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("sfu: dtls: SRTP profile %#x not supported", dp)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return nil, errors.New("sfu: dtls: no connection state after the handshake")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, isClient); err != nil {
		return nil, fmt.Errorf("sfu: export SRTP keys: %w", err)
	}
	rx, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
		srtp.SRTPReplayProtection(srtpReplayWindow), srtp.SRTCPReplayProtection(srtcpReplayWindow))
	if err != nil {
		return nil, fmt.Errorf("sfu: srtp: %w", err)
	}
	tx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return nil, fmt.Errorf("sfu: srtp: %w", err)
	}
	return &srtpKeys{profile: profile, rx: rx, tx: tx}, nil
}
