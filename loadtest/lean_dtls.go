package loadtest

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"
)

// The lean client's DTLS-SRTP (RFC 5763, RFC 5764): pion/dtls runs the
// handshake over a pipe the receive loop feeds, as the DTLS client unless
// the node chose to be (a full pion agent answers setup:active), and
// the exported keys make pion/srtp contexts. After the handshake the
// connection stays open and idle until teardown: a close_notify would
// end the node's session.

const (
	// dtlsTimeout bounds one handshake: a node in a join storm answers
	// within a second or two.
	dtlsTimeout = 15 * time.Second
	// dtlsQueue is the records the pipe holds for the handshake; a
	// record that finds it full is dropped and DTLS retransmits it
	// (RFC 6347 §4.2.4).
	dtlsQueue = 16
)

// dtlsPipe is the net.PacketConn pion/dtls reads and writes: records
// arrive by push from the receive loop, leave through write.
type dtlsPipe struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	write  func([]byte) error
	remote net.Addr

	// mu guards deadline and changed (closed and replaced when the
	// deadline moves, so a waiting read looks again).
	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{}
}

var _ net.PacketConn = (*dtlsPipe)(nil)

func newDTLSPipe(remote net.Addr, write func([]byte) error) *dtlsPipe {
	return &dtlsPipe{in: make(chan []byte, dtlsQueue), closed: make(chan struct{}), write: write,
		remote: remote, changed: make(chan struct{})}
}

// push hands the handshake a copy of one record; it never blocks.
func (d *dtlsPipe) push(b []byte) {
	select {
	case <-d.closed:
	case d.in <- append([]byte(nil), b...):
	default:
	}
}

// ReadFrom implements net.PacketConn.
func (d *dtlsPipe) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		d.mu.Lock()
		deadline, changed := d.deadline, d.changed
		d.mu.Unlock()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			wait := time.Until(deadline)
			if wait <= 0 {
				return 0, d.remote, errPipeDeadline
			}
			t := time.NewTimer(wait)
			expired = t.C
			defer t.Stop()
		}
		select {
		case b := <-d.in:
			return copy(p, b), d.remote, nil
		case <-d.closed:
			return 0, d.remote, net.ErrClosed
		case <-expired:
			return 0, d.remote, errPipeDeadline
		case <-changed:
		}
	}
}

// WriteTo implements net.PacketConn: every record goes to the node.
func (d *dtlsPipe) WriteTo(p []byte, _ net.Addr) (int, error) {
	select {
	case <-d.closed:
		return 0, net.ErrClosed
	default:
	}
	if err := d.write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements net.PacketConn.
func (d *dtlsPipe) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}

// LocalAddr implements net.PacketConn.
func (d *dtlsPipe) LocalAddr() net.Addr { return d.remote }

// SetDeadline implements net.PacketConn.
func (d *dtlsPipe) SetDeadline(t time.Time) error { return d.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn; pion's context wrappers
// use it to end a read when a context ends.
func (d *dtlsPipe) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes never block.
func (d *dtlsPipe) SetWriteDeadline(time.Time) error { return nil }

// errPipeDeadline is a net.Error timeout, as pion's wrappers expect.
var errPipeDeadline error = pipeDeadline{}

type pipeDeadline struct{}

func (pipeDeadline) Error() string   { return "loadtest: dtls read deadline" }
func (pipeDeadline) Timeout() bool   { return true }
func (pipeDeadline) Temporary() bool { return true }

// fingerprintOf is a certificate's SDP fingerprint (RFC 8122 §5).
func fingerprintOf(der []byte) string {
	sum := sha256.Sum256(der)
	var b strings.Builder
	b.WriteString("sha-256 ")
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

// srtpPair is a session's SRTP once keyed: rx decrypts what the node
// sends, tx encrypts what the client sends.
type srtpPair struct {
	rx, tx *srtp.Context
}

// dtlsHandshake runs the handshake over pipe, as the DTLS client unless
// server is set (the node answered an offer with setup:active), checks
// the node's certificate against its SDP fingerprint, and derives the
// SRTP contexts (RFC 5764 §4.2), AEAD_AES_128_GCM preferred.
func dtlsHandshake(ctx context.Context, pipe *dtlsPipe, cert tls.Certificate, nodeFP string, server bool) (*dtls.Conn, *srtpPair, error) {
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("the node sent no certificate")
		}
		if got := fingerprintOf(raw[0]); !strings.EqualFold(got, strings.TrimSpace(nodeFP)) {
			return fmt.Errorf("the node's certificate is %s, its SDP says %s", got, nodeFP)
		}
		return nil
	}
	var conn *dtls.Conn
	var err error
	if server {
		// RFC 5763 §5: each side proves the certificate its fingerprint
		// names, so the client's is required.
		conn, err = dtls.ServerWithOptions(pipe, pipe.remote,
			dtls.WithCertificates(cert),
			dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
			dtls.WithClientAuth(dtls.RequireAnyClientCert),
			dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(verify),
		)
	} else {
		conn, err = dtls.ClientWithOptions(pipe, pipe.remote,
			dtls.WithCertificates(cert),
			dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
			dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
			dtls.WithInsecureSkipVerify(true),
			dtls.WithVerifyPeerCertificate(verify),
		)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dtls: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, dtlsTimeout)
	defer cancel()
	if err := conn.HandshakeContext(hctx); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("dtls handshake: %w", err)
	}
	keys, err := srtpKeys(conn, !server)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, keys, nil
}

func srtpKeys(conn *dtls.Conn, client bool) (*srtpPair, error) {
	dp, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return nil, errors.New("dtls: no SRTP profile negotiated")
	}
	var profile srtp.ProtectionProfile
	switch dp {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("dtls: SRTP profile %#x", dp)
	}
	state, ok := conn.ConnectionState()
	if !ok {
		return nil, errors.New("dtls: no connection state")
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, client); err != nil {
		return nil, fmt.Errorf("export SRTP keys: %w", err)
	}
	rx, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile)
	if err != nil {
		return nil, fmt.Errorf("srtp: %w", err)
	}
	tx, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return nil, fmt.Errorf("srtp: %w", err)
	}
	return &srtpPair{rx: rx, tx: tx}, nil
}
