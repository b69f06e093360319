package turn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/pionlog"
	"github.com/invigil/invigil/internal/testcert"
	pionturn "github.com/pion/turn/v5"
)

// tlsFixture is a server with TURNS and the certificate files it reads.
type tlsFixture struct {
	*testServer
	certFile, keyFile string
	pool              *x509.CertPool
	notAfter          time.Time
}

func newTLSServer(t *testing.T, pollInterval time.Duration) *tlsFixture {
	t.Helper()
	dir := t.TempDir()
	f := &tlsFixture{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	f.notAfter = time.Now().Add(48 * time.Hour).Truncate(time.Second)
	f.pool = testcert.Write(t, f.certFile, f.keyFile, "first", f.notAfter)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.testServer = newTestServer(t, func(c *Config) {
		allowLoopback(c)
		c.TLS, c.CertFile, c.KeyFile, c.CertPollInterval = ln, f.certFile, f.keyFile, pollInterval
	})
	return f
}

// dialTLS opens a TLS connection trusting pool and returns the server
// certificate's common name.
func (f *tlsFixture) dialTLS(pool *x509.CertPool) (*tls.Conn, string, error) {
	c, err := tls.Dial("tcp4", f.tlsAddr(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, "", err
	}
	return c, c.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// echoPeer is a UDP peer on 127.0.0.1 that sends every datagram back.
func echoPeer(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteToUDP(buf[:n], from)
		}
	})
	t.Cleanup(func() {
		_ = c.Close()
		wg.Wait()
	})
	return c.LocalAddr().(*net.UDPAddr)
}

// pionClient is pion's TURN client over an established connection, with
// one UDP allocation.
type pionClient struct {
	client *pionturn.Client
	relay  net.PacketConn
}

func newPionClient(t *testing.T, conn net.PacketConn, server, identity string) *pionClient {
	t.Helper()
	u, p := Credentials([]byte(testSecret), identity, time.Now().Add(time.Hour))
	client, err := pionturn.NewClient(&pionturn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: u, Password: p, Realm: DefaultRealm,
		LoggerFactory: pionlog.New(slog.New(slog.NewTextHandler(t.Output(), nil)), pionlog.Relay, time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		client.Close()
		t.Fatalf("allocate: %v", err)
	}
	pc := &pionClient{client: client, relay: relay}
	t.Cleanup(pc.close)
	return pc
}

func (c *pionClient) close() {
	_ = c.relay.Close()
	c.client.Close()
}

// echo sends msg to peer through the relay and waits for it to come back.
func (c *pionClient) echo(peer net.Addr, msg string) error {
	buf := make([]byte, 2048)
	for range 10 {
		if _, err := c.relay.WriteTo([]byte(msg), peer); err != nil {
			return err
		}
		_ = c.relay.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, _, err := c.relay.ReadFrom(buf)
		if err == nil && string(buf[:n]) == msg {
			return nil
		}
	}
	return errors.New("no echo of " + msg)
}

// TestTURNSUclient has turnutils_uclient allocate and relay over TLS (-S).
func TestTURNSUclient(t *testing.T) {
	t.Parallel() // turnutils_uclient runs take seconds of waiting
	f := newTLSServer(t, -1)
	peer := startPeer(t)
	out, err := runUclient(t, f.tlsPort, peer, "-S", "-t", "-W", testSecret, "-u", "student")
	requireRelayed(t, out, err)
}

// TestTURNSReloadKeepsAllocations makes an allocation over TLS with pion's
// client, replaces the certificate and calls Reload (what SIGHUP does):
// new handshakes get the new certificate, and the old connection's
// allocation keeps relaying.
func TestTURNSReloadKeepsAllocations(t *testing.T) {
	f := newTLSServer(t, -1)
	peer := echoPeer(t)
	if got := f.Stats().CertNotAfter; !got.Equal(f.notAfter) {
		t.Fatalf("CertNotAfter = %v, want %v", got, f.notAfter)
	}
	conn, cn, err := f.dialTLS(f.pool)
	if err != nil || cn != "first" {
		t.Fatalf("first TLS dial: %v (cn %q)", err, cn)
	}
	c := newPionClient(t, pionturn.NewSTUNConn(conn), f.tlsAddr(), "student")
	if err := c.echo(peer, "before reload"); err != nil {
		t.Fatal(err)
	}

	secondNotAfter := f.notAfter.Add(24 * time.Hour)
	secondPool := testcert.Write(t, f.certFile, f.keyFile, "second", secondNotAfter)
	if err := f.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := f.Stats().CertNotAfter; !got.Equal(secondNotAfter) {
		t.Errorf("CertNotAfter after reload = %v, want %v", got, secondNotAfter)
	}
	if _, _, err := f.dialTLS(f.pool); err == nil {
		t.Error("a new handshake still presents the old certificate")
	}
	c2, cn, err := f.dialTLS(secondPool)
	if err != nil || cn != "second" {
		t.Fatalf("TLS dial after reload: %v (cn %q)", err, cn)
	}
	_ = c2.Close()

	if err := c.echo(peer, "after reload"); err != nil {
		t.Fatalf("allocation made before the reload: %v", err)
	}
	if n := f.Stats().Allocations; n != 1 {
		t.Errorf("Allocations = %d, want 1", n)
	}

	// A broken certificate file is refused and the current one kept.
	if err := os.WriteFile(f.certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil {
		t.Error("Reload accepted a broken certificate")
	}
	if _, cn, err := f.dialTLS(secondPool); err != nil || cn != "second" {
		t.Errorf("after a failed reload: %v (cn %q), want the second certificate kept", err, cn)
	}
}

// TestTURNSReloadOnFileChange replaces the certificate files without
// calling Reload: the poller notices and new handshakes get the new one.
func TestTURNSReloadOnFileChange(t *testing.T) {
	f := newTLSServer(t, 20*time.Millisecond)
	pool := testcert.Write(t, f.certFile, f.keyFile, "renewed", f.notAfter.Add(time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, cn, err := f.dialTLS(pool)
		if err == nil {
			_ = c.Close()
			if cn == "renewed" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewed certificate not served within 5s (last: %v, cn %q)", err, cn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTLSHandshakeDeadline checks that a client that connects to the TLS
// port and never speaks is disconnected, not kept forever.
func TestTLSHandshakeDeadline(t *testing.T) {
	t.Parallel() // waits for firstReadTimeout
	f := newTLSServer(t, -1)
	c, err := net.Dial("tcp4", "127.0.0.1:"+strconv.Itoa(f.tlsPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(firstReadTimeout + 5*time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("silent TLS client not disconnected: %v", err)
	}
}
