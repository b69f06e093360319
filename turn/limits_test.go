package turn

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// lifetime is a LIFETIME attribute (RFC 8656 §14.2); 0 deletes.
func lifetime(seconds uint32) stun.Setter {
	return rawAttr{stun.AttrLifetime, []byte{byte(seconds >> 24), byte(seconds >> 16), byte(seconds >> 8), byte(seconds)}}
}

// TestAllocationQuota checks the per-identity quota (RFC 8656 §7.2, 486):
// the third allocation of one identity is refused, another identity is
// not affected, and a deleted allocation frees its slot.
func TestAllocationQuota(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.MaxAllocationsPerUser = 2 })
	first := dialRaw(t, "udp", ts.udpAddr(), "student")
	first.allocate(protoUDP)
	second := dialRaw(t, "tcp", ts.udpAddr(), "student")
	second.allocate(protoUDP)
	third := dialRaw(t, "udp", ts.udpAddr(), "student")
	if _, code := third.request(stun.MethodAllocate, rawAttr{stun.AttrRequestedTransport, []byte{protoUDP, 0, 0, 0}}); code != 486 {
		t.Fatalf("third allocation: code %d, want 486", code)
	}
	dialRaw(t, "udp", ts.udpAddr(), "other-student").allocate(protoUDP)
	if got := ts.Stats().Refused[RefusedQuota]; got != 1 {
		t.Errorf("Refused[quota] = %d, want 1", got)
	}
	if lines(ts.logs.String(), "reason=quota") == "" {
		t.Error("no quota line logged")
	}

	// Refresh with LIFETIME 0 deletes (RFC 8656 §8); so does closing the
	// TCP connection an allocation was made on (§3.1).
	if _, code := first.request(stun.MethodRefresh, lifetime(0)); code != 0 {
		t.Fatalf("refresh 0: code %d", code)
	}
	third.allocate(protoUDP)
	_ = second.conn.Close()
	waitFor(t, "the TCP allocation to go", func() bool { return ts.Stats().Allocations == 2 })
	dialRaw(t, "udp", ts.udpAddr(), "student").allocate(protoUDP)
}

// TestBandwidthCapUDP sends three times the cap's burst through a UDP relay
// in each direction at once: about one burst passes, the rest is dropped
// and counted.
func TestBandwidthCapUDP(t *testing.T) {
	const bitsPerSecond = 80_000 // 10,000 bytes/s, burst 10,000 bytes
	const size, count = 1000, 30
	ts := newTestServer(t, func(c *Config) {
		allowLoopback(c)
		c.MaxBitsPerSecond = bitsPerSecond
	})
	peer := newUDPPeer(t, "udp4", "127.0.0.1:0")
	c := dialRaw(t, "udp", ts.udpAddr(), "student")
	relayed := c.allocate(protoUDP)
	to := peerAddr{peer.addrPort().Addr(), peer.addrPort().Port()}
	if _, code := c.request(stun.MethodCreatePermission, to); code != 0 {
		t.Fatalf("CreatePermission: code %d", code)
	}

	payload := bytes.Repeat([]byte{'x'}, size)
	for range count {
		c.sendIndication(to, payload)
	}
	up := 0
	for data, _ := peer.receive(500 * time.Millisecond); data != nil; data, _ = peer.receive(200 * time.Millisecond) {
		up++
	}

	for range count {
		if _, err := peer.conn.WriteToUDP(payload, net.UDPAddrFromAddrPort(relayed)); err != nil {
			t.Fatal(err)
		}
	}
	down := 0
	for m := c.read(500 * time.Millisecond); m != nil; m = c.read(200 * time.Millisecond) {
		if m.Type == stun.NewType(stun.MethodData, stun.ClassIndication) {
			down++
		}
	}

	// A burst is 10 datagrams; the few milliseconds of sending refill a
	// fraction of one.
	for dir, n := range map[string]int{"client→peer": up, "peer→client": down} {
		if n < 8 || n > 14 {
			t.Errorf("%s: %d of %d datagrams of %d bytes passed a %d b/s cap, want about 10", dir, n, count, size, bitsPerSecond)
		}
	}
	if got := ts.Stats().Refused[RefusedBandwidth]; got < uint64(2*count-2*14) {
		t.Errorf("Refused[bandwidth] = %d, want >= %d", got, 2*count-2*14)
	}
	if lines(ts.logs.String(), "reason=bandwidth") == "" {
		t.Error("no bandwidth line logged")
	}
}

// TestBandwidthCapTCPRelay paces an RFC 6062 TCP relay instead of dropping:
// all bytes arrive, no faster than the cap allows.
func TestBandwidthCapTCPRelay(t *testing.T) {
	const bitsPerSecond = 800_000 // 100,000 bytes/s, burst 100,000 bytes
	const total = 250_000         // burst + 1.5 s at the cap
	media := listenTCP(t)
	ts := newTestServer(t, func(c *Config) {
		c.MediaAddrs = []netip.AddrPort{tcpAddrPort(media)}
		c.MaxBitsPerSecond = bitsPerSecond
	})
	control := dialRaw(t, "tcp", ts.udpAddr(), "student")
	control.allocate(protoTCP)
	resp, code := control.request(stun.MethodConnect, peerAddr{tcpAddrPort(media).Addr(), tcpAddrPort(media).Port()})
	if code != 0 {
		t.Fatalf("Connect: code %d", code)
	}
	id, err := resp.Get(stun.AttrConnectionID)
	if err != nil {
		t.Fatal(err)
	}
	_ = media.SetDeadline(time.Now().Add(5 * time.Second))
	peerConn, err := media.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peerConn.Close()

	data := dialRaw(t, "tcp", ts.udpAddr(), "student")
	if _, code := data.request(stun.MethodConnectionBind, rawAttr{stun.AttrConnectionID, id}); code != 0 {
		t.Fatalf("ConnectionBind: code %d", code)
	}
	_ = data.conn.SetDeadline(time.Time{})
	start := time.Now()
	payload := bytes.Repeat([]byte("0123456789"), total/10)
	go func() { _, _ = data.conn.Write(payload) }() // ends when the test closes the conn
	got := make([]byte, total)
	_ = peerConn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(peerConn, got); err != nil {
		t.Fatalf("peer read: %v", err)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(got, payload) {
		t.Fatal("relayed bytes differ")
	}
	if elapsed < 1200*time.Millisecond {
		t.Errorf("%d bytes relayed in %v, faster than a %d b/s cap allows (>= 1.5s)", total, elapsed, bitsPerSecond)
	}
	if ts.Stats().Refused[RefusedBandwidth] == 0 {
		t.Error("pacing not counted")
	}
	// The last write is counted just after the peer has it.
	waitFor(t, "RelayedBytes to count every byte", func() bool { return ts.Stats().RelayedBytes >= total })
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
