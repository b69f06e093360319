package turn

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// newTestRelay wraps a UDP socket as the relay of an allocation of ts,
// outside pion, to measure the per-datagram path alone.
func newTestRelay(t testing.TB, ts *Server, bitsPerSecond int) *relayPacketConn {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return &relayPacketConn{PacketConn: pc, s: ts, a: &allocation{
		user: "bench", relayAddr: pc.LocalAddr().String(),
		up: newTokenBucket(bitsPerSecond, time.Now()), down: newTokenBucket(bitsPerSecond, time.Now()),
	}}
}

// TestRelayDatagramPathAllocatesNothing: forwarding a datagram to the media
// address, and dropping one (refused port, over the cap), allocate
// nothing (STYLE.md: nothing per packet that is not forwarding).
func TestRelayDatagramPathAllocatesNothing(t *testing.T) {
	media := newUDPPeer(t, "udp4", "127.0.0.1:0")
	other := newUDPPeer(t, "udp4", "127.0.0.1:0")
	ts := newTestServer(t, func(c *Config) { c.MediaAddrs = []netip.AddrPort{media.addrPort()} })
	r := newTestRelay(t, ts.Server, -1)
	payload := make([]byte, 1100)
	to := net.UDPAddrFromAddrPort(media.addrPort())
	refused := net.UDPAddrFromAddrPort(other.addrPort())
	for name, f := range map[string]func(){
		"forward":      func() { _, _ = r.WriteTo(payload, to) },
		"refused_port": func() { _, _ = r.WriteTo(payload, refused) },
	} {
		if n := testing.AllocsPerRun(200, f); n != 0 {
			t.Errorf("%s: %.1f allocations per datagram, want 0", name, n)
		}
	}
	capped := newTestRelay(t, ts.Server, 8) // one byte per second: everything drops
	if n := testing.AllocsPerRun(200, func() { _, _ = capped.WriteTo(payload, to) }); n != 0 {
		t.Errorf("over the cap: %.1f allocations per datagram, want 0", n)
	}
}

// BenchmarkRelayWriteTo measures the relay's per-datagram cost on top of
// the socket write: policy check, bucket, byte count.
func BenchmarkRelayWriteTo(b *testing.B) {
	media, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer media.Close()
	ap := media.LocalAddr().(*net.UDPAddr).AddrPort()
	udp, tcp, _ := listenUDPAndTCP(b)
	s, err := New(Config{UDP: udp, TCP: tcp, Secret: []byte("x"), RelayIP: net.IPv4(127, 0, 0, 1), MediaAddrs: []netip.AddrPort{ap}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	payload := make([]byte, 1100)
	to := net.UDPAddrFromAddrPort(ap)
	for _, tc := range []struct {
		name string
		bps  int
	}{{"capped", 1 << 40}, {"uncapped", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			r := newTestRelay(b, s, tc.bps)
			b.ReportAllocs()
			for b.Loop() {
				_, _ = r.WriteTo(payload, to)
			}
		})
		b.Run(tc.name+"_checks_only", func(b *testing.B) {
			r := newTestRelay(b, s, tc.bps)
			b.ReportAllocs()
			for b.Loop() {
				peer := netAddrPort(to)
				if r.s.policy.checkAddrPort(peer) != "" || (r.a.up != nil && !r.a.up.allow(time.Now(), len(payload))) {
					b.Fatal("refused")
				}
				r.a.bytes.Add(uint64(len(payload)))
			}
		})
	}
}
