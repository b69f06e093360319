package turn

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/pion/stun/v4"
)

// TestSTUNBinding answers an unauthenticated Binding request (RFC 8489
// §6.3) with the client's address, over UDP, TCP and TLS.
func TestSTUNBinding(t *testing.T) {
	f := newTLSServer(t, -1)
	for _, tc := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"udp", func() (net.Conn, error) { return net.Dial("udp4", f.udpAddr()) }},
		{"tcp", func() (net.Conn, error) { return net.Dial("tcp4", f.udpAddr()) }},
		{"tls", func() (net.Conn, error) {
			return tls.Dial("tcp4", f.tlsAddr(), &tls.Config{RootCAs: f.pool, MinVersion: tls.VersionTLS12})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tc.dial()
			if err != nil {
				t.Fatal(err)
			}
			c := &rawClient{t: t, conn: conn, stream: tc.name != "udp", buf: make([]byte, 2048)}
			defer conn.Close()
			req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
			c.send(req)
			resp := c.read(2 * time.Second)
			if resp == nil || resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
				t.Fatalf("binding answer: %v", resp)
			}
			var mapped stun.XORMappedAddress
			if err := mapped.GetFrom(resp); err != nil {
				t.Fatal(err)
			}
			if got, want := mapped.String(), conn.LocalAddr().String(); got != want {
				t.Errorf("XOR-MAPPED-ADDRESS = %s, want %s", got, want)
			}
		})
	}
}

// TestCloseWithLiveAllocations closes a server holding UDP and TCP
// allocations, an open TCP control connection and an RFC 6062 peer
// connection; Close must end them all (the TestMain leak check confirms
// no goroutine survives) and the client's connection must see EOF.
func TestCloseWithLiveAllocations(t *testing.T) {
	media := listenTCP(t)
	udp, tcp, port := listenUDPAndTCP(t)
	s, err := New(Config{
		UDP: udp, TCP: tcp, Secret: []byte(testSecret), RelayIP: net.IPv4(127, 0, 0, 1),
		MediaAddrs: []netip.AddrPort{tcpAddrPort(media)},
		Logger:     slog.New(slog.NewTextHandler(t.Output(), nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dialRaw(t, "udp", addr, "a").allocate(protoUDP)
	control := dialRaw(t, "tcp", addr, "b")
	control.allocate(protoTCP)
	if _, code := control.request(stun.MethodConnect, peerAddr{tcpAddrPort(media).Addr(), tcpAddrPort(media).Port()}); code != 0 {
		t.Fatalf("Connect: %d", code)
	}
	idle, err := net.Dial("tcp4", addr) // never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitFor(t, "2 allocations", func() bool { return s.Stats().Allocations == 2 })

	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout+time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Close hung")
	}
	_ = control.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := control.conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("control connection not closed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestRefusalLogRateLimited: one line per refusal kind per interval, with
// the count of suppressed ones; the counters stay exact.
func TestRefusalLogRateLimited(t *testing.T) {
	buf := &logbuf.Buffer{}
	rs := &refusals{log: slog.New(slog.NewTextHandler(buf, nil))}
	attrs := func() []slog.Attr { return []slog.Attr{slog.String("client", "192.0.2.1:1")} }
	for range 5 {
		rs.refuse(refExpired, attrs)
	}
	rs.refuse(refQuota, attrs)
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Fatalf("%d lines for 5 expired and 1 quota refusal, want 2:\n%s", n, buf)
	}
	rs.next[refExpired].Store(0) // the interval has passed
	rs.refuse(refExpired, attrs)
	if !strings.Contains(buf.String(), "reason=expired suppressed=4") {
		t.Errorf("summary line missing:\n%s", buf)
	}
	if got := rs.snapshot(); got[RefusedExpired] != 6 || got[RefusedQuota] != 1 || got[RefusedBandwidth] != 0 || len(got) != int(numRefusals) {
		t.Errorf("snapshot = %v", got)
	}
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Error("refusals are a client's fault: Warn")
	}
}
