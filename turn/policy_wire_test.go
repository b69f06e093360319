package turn

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestPermissionRefusedOnTheWire sends CreatePermission and ChannelBind for
// refused peers in every spelling a client can put in XOR-PEER-ADDRESS,
// over UDP and TCP, and expects 403 for each (RFC 8656 §9.1, §12): pion
// answers CreatePermission 403 itself; its 401 to ChannelBind is corrected
// by codeFixer.
func TestPermissionRefusedOnTheWire(t *testing.T) {
	ts := newTestServer(t, nil)
	refused := []string{
		"127.0.0.1:9", "127.1.2.3:9", "0.0.0.0:9", "10.0.0.1:9", "172.16.5.4:9", "192.168.1.1:9",
		"100.64.0.1:9", "169.254.169.254:80", "224.0.0.1:9", "255.255.255.255:9", "240.0.0.1:9",
		// IPv4-mapped IPv6 in the IPv6 family (RFC 4291 §2.5.5.2): the
		// CVE-2020-26262 spelling.
		"[::ffff:127.0.0.1]:9", "[::ffff:7f00:1]:9", "[::ffff:0.0.0.0]:9",
		"[::ffff:169.254.169.254]:80", "[::ffff:10.0.0.1]:9", "[::ffff:100.64.0.1]:9",
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := dialRaw(t, network, ts.udpAddr(), "mallory-"+network)
			c.allocate(protoUDP)
			for i, peer := range refused {
				if _, code := c.request(stun.MethodCreatePermission, mustPeer(peer)); code != 403 {
					t.Errorf("CreatePermission %s: code %d, want 403", peer, code)
				}
				if _, code := c.request(stun.MethodChannelBind, channelNumber(0x4000+uint16(i)), mustPeer(peer)); code != 403 {
					t.Errorf("ChannelBind %s: code %d, want 403", peer, code)
				}
			}
			// Several peers in one CreatePermission: one refused refuses all
			// (RFC 8656 §9.1).
			if _, code := c.request(stun.MethodCreatePermission, mustPeer("8.8.8.8:53"), mustPeer("[::ffff:127.0.0.1]:9")); code != 403 {
				t.Errorf("CreatePermission public+loopback: code %d, want 403", code)
			}
			if _, code := c.request(stun.MethodCreatePermission, mustPeer("8.8.8.8:53")); code != 0 {
				t.Errorf("CreatePermission 8.8.8.8: code %d, want success", code)
			}
			if _, code := c.request(stun.MethodChannelBind, channelNumber(0x4fff), mustPeer("8.8.8.8:53")); code != 0 {
				t.Errorf("ChannelBind 8.8.8.8: code %d, want success", code)
			}
		})
	}
	if got := ts.Stats().Refused[RefusedForbiddenPeer]; got < uint64(4*len(refused)) {
		t.Errorf("forbidden_peer refusals = %d, want >= %d", got, 4*len(refused))
	}
	if lines(ts.logs.String(), "reason=forbidden_peer") == "" {
		t.Error("no forbidden_peer line logged")
	}
}

// TestPermissionRefusedIPv6 does the same over an IPv6 allocation, where
// the native IPv6 forms of the refused ranges can be asked for.
func TestPermissionRefusedIPv6(t *testing.T) {
	pc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ts := newTestServer(t, func(c *Config) {
		_ = c.UDP.Close()
		_ = c.TCP.Close()
		c.UDP, c.TCP, c.RelayIP = pc, nil, net.IPv6loopback
	})
	c := dialRaw(t, "udp6", pc.LocalAddr().String(), "mallory6")
	if got := c.allocate(protoUDP); got.Addr() != netip.IPv6Loopback() {
		t.Fatalf("relayed address %v, want on ::1", got)
	}
	for i, peer := range []string{
		"[::1]:9", "[::]:9", "[fe80::1]:9", "[fc00::1]:9", "[fd12:3456::1]:9", "[ff02::1]:9", "[fec0::1]:9",
		"[::127.0.0.1]:9", "[64:ff9b::7f00:1]:9", "[64:ff9b::a9fe:a9fe]:80", "[2002:7f00:1::1]:9",
	} {
		if _, code := c.request(stun.MethodCreatePermission, mustPeer(peer)); code != 403 {
			t.Errorf("CreatePermission %s: code %d, want 403", peer, code)
		}
		if _, code := c.request(stun.MethodChannelBind, channelNumber(0x4000+uint16(i)), mustPeer(peer)); code != 403 {
			t.Errorf("ChannelBind %s: code %d, want 403", peer, code)
		}
	}
	if _, code := c.request(stun.MethodCreatePermission, mustPeer("[2001:4860:4860::8888]:53")); code != 0 {
		t.Errorf("CreatePermission public IPv6: code %d, want success", code)
	}
	if got := ts.Stats().Refused[RefusedForbiddenPeer]; got < 22 {
		t.Errorf("forbidden_peer refusals = %d, want >= 22", got)
	}
}

// TestSendToRefusedPeerDropped checks the data path: with no permission a
// Send indication to a refused peer, in any spelling, never reaches it.
func TestSendToRefusedPeerDropped(t *testing.T) {
	ts := newTestServer(t, nil)
	peer := newUDPPeer(t, "udp4", "127.0.0.1:0")
	port := strconv.Itoa(int(peer.addrPort().Port()))
	for _, network := range []string{"udp", "tcp"} {
		c := dialRaw(t, network, ts.udpAddr(), "mallory-"+network)
		c.allocate(protoUDP)
		for _, to := range []string{"127.0.0.1:", "[::ffff:127.0.0.1]:", "0.0.0.0:"} {
			c.request(stun.MethodCreatePermission, mustPeer(to+port)) // refused
			c.sendIndication(mustPeer(to+port), []byte("leak"))
		}
	}
	if data, from := peer.receive(300 * time.Millisecond); data != nil {
		t.Fatalf("refused peer received %q from %v", data, from)
	}
}

// TestAllowPeersAndNodePorts checks --turn-allow-peers and the node's own
// ports on the data path: with 127.0.0.0/8 allowed, a loopback peer is
// reachable over Send indications and ChannelData, but the addresses in
// DenyAddrs (the node's HTTP port, TURN's own port) are not, even though
// their IP is allowed.
func TestAllowPeersAndNodePorts(t *testing.T) {
	peer := newUDPPeer(t, "udp4", "127.0.0.1:0")
	denied := newUDPPeer(t, "udp4", "127.0.0.1:0")
	wildcardDenied := newUDPPeer(t, "udp4", "127.0.0.1:0")
	ts := newTestServer(t, func(c *Config) {
		c.AllowPeers = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		turnPort := uint16(c.UDP.LocalAddr().(*net.UDPAddr).Port)
		c.DenyAddrs = []netip.AddrPort{
			denied.addrPort(),
			netip.AddrPortFrom(netip.IPv4Unspecified(), wildcardDenied.addrPort().Port()),
			netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), turnPort),
		}
	})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c := dialRaw(t, network, ts.udpAddr(), "alice-"+network)
			c.allocate(protoUDP)
			if _, code := c.request(stun.MethodCreatePermission, mustPeer("127.0.0.1:1")); code != 0 {
				t.Fatalf("CreatePermission 127.0.0.1 with AllowPeers: code %d", code)
			}
			for _, to := range []netip.AddrPort{denied.addrPort(), wildcardDenied.addrPort(), netip.MustParseAddrPort(ts.udpAddr())} {
				c.sendIndication(peerAddr{to.Addr(), to.Port()}, []byte("to own port"))
				c.sendIndication(peerAddr{netip.AddrFrom16(to.Addr().As16()), to.Port()}, []byte("to own port, mapped"))
			}
			c.sendIndication(peerAddr{peer.addrPort().Addr(), peer.addrPort().Port()}, []byte("hello "+network))
			if data, _ := peer.receive(2 * time.Second); string(data) != "hello "+network {
				t.Fatalf("allowed peer got %q, want hello", data)
			}
			mapped := peerAddr{netip.AddrFrom16(peer.addrPort().Addr().As16()), peer.addrPort().Port()}
			if _, code := c.request(stun.MethodChannelBind, channelNumber(0x4001), mapped); code != 0 {
				t.Fatalf("ChannelBind to allowed peer (mapped form): code %d", code)
			}
			if _, err := c.conn.Write(channelData(0x4001, []byte("via channel"), c.stream)); err != nil {
				t.Fatal(err)
			}
			if data, _ := peer.receive(2 * time.Second); string(data) != "via channel" {
				t.Fatalf("allowed peer got %q over the channel", data)
			}
			// A channel to a denied port of the allowed IP is bound (the
			// permission is per IP, RFC 8656 §9) but carries nothing.
			if _, code := c.request(stun.MethodChannelBind, channelNumber(0x4002), peerAddr{denied.addrPort().Addr(), denied.addrPort().Port()}); code != 0 {
				t.Fatalf("ChannelBind to allowed IP: code %d", code)
			}
			if _, err := c.conn.Write(channelData(0x4002, []byte("own port via channel"), c.stream)); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, p := range []*udpPeer{denied, wildcardDenied} {
		if data, _ := p.receive(300 * time.Millisecond); data != nil {
			t.Errorf("denied node port %v received %q", p.addrPort(), data)
		}
	}
	if got := ts.Stats().Refused[RefusedForbiddenPeer]; got < 14 {
		t.Errorf("forbidden_peer refusals = %d, want >= 14", got)
	}
}

// TestMediaAddrsAlwaysAllowed checks that the node's own media address is
// reachable with the default policy although it is loopback here, and
// that other ports on the same IP are not.
func TestMediaAddrsAlwaysAllowed(t *testing.T) {
	media := newUDPPeer(t, "udp4", "127.0.0.1:0")
	other := newUDPPeer(t, "udp4", "127.0.0.1:0")
	ts := newTestServer(t, func(c *Config) { c.MediaAddrs = []netip.AddrPort{media.addrPort()} })
	c := dialRaw(t, "udp", ts.udpAddr(), "student")
	c.allocate(protoUDP)
	if _, code := c.request(stun.MethodCreatePermission, mustPeer("127.0.0.1:1")); code != 0 {
		t.Fatalf("CreatePermission for the media IP: code %d", code)
	}
	if _, code := c.request(stun.MethodCreatePermission, mustPeer("127.0.0.2:1")); code != 403 {
		t.Fatalf("CreatePermission for another loopback IP: code %d, want 403", code)
	}
	c.sendIndication(peerAddr{other.addrPort().Addr(), other.addrPort().Port()}, []byte("other port"))
	c.sendIndication(peerAddr{media.addrPort().Addr(), media.addrPort().Port()}, []byte("rtp"))
	if data, _ := media.receive(2 * time.Second); string(data) != "rtp" {
		t.Fatalf("media address got %q", data)
	}
	if data, _ := other.receive(300 * time.Millisecond); data != nil {
		t.Fatalf("non-media port of the node received %q", data)
	}
}

// TestConnectPolicy checks RFC 6062 TCP relays: Connect to a refused IP is
// answered 403 by pion; Connect to a refused port of an allowed IP (the
// node's HTTP port next to its media port) is refused before any TCP
// connection is made, and its 447 corrected to 403; Connect to the media
// TCP port succeeds.
func TestConnectPolicy(t *testing.T) {
	mediaLn := listenTCP(t)
	httpLn := listenTCP(t)
	ts := newTestServer(t, func(c *Config) {
		c.MediaAddrs = []netip.AddrPort{tcpAddrPort(mediaLn)}
		c.DenyAddrs = []netip.AddrPort{tcpAddrPort(httpLn)}
	})
	c := dialRaw(t, "tcp", ts.udpAddr(), "student")
	c.allocate(protoTCP)
	if _, code := c.request(stun.MethodConnect, mustPeer("10.1.2.3:80")); code != 403 {
		t.Errorf("Connect to a private IP: code %d, want 403", code)
	}
	if _, code := c.request(stun.MethodConnect, mustPeer("[::ffff:127.0.0.2]:80")); code != 403 {
		t.Errorf("Connect to mapped loopback: code %d, want 403", code)
	}
	if _, code := c.request(stun.MethodConnect, peerAddr{netip.AddrFrom16(tcpAddrPort(httpLn).Addr().As16()), tcpAddrPort(httpLn).Port()}); code != 403 {
		t.Errorf("Connect to the node's HTTP port: code %d, want 403", code)
	}
	resp, code := c.request(stun.MethodConnect, peerAddr{tcpAddrPort(mediaLn).Addr(), tcpAddrPort(mediaLn).Port()})
	if code != 0 || !resp.Contains(stun.AttrConnectionID) {
		t.Errorf("Connect to the media TCP port: code %d, want success with CONNECTION-ID", code)
	}
	if acceptWithin(httpLn, 300*time.Millisecond) {
		t.Error("the node's HTTP port was connected to")
	}
	if !acceptWithin(mediaLn, 2*time.Second) {
		t.Error("the media TCP port was not connected to")
	}
}

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

func tcpAddrPort(ln *net.TCPListener) netip.AddrPort {
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func acceptWithin(ln *net.TCPListener, d time.Duration) bool {
	_ = ln.SetDeadline(time.Now().Add(d))
	c, err := ln.Accept()
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}
