package turn

import (
	"net"
	"net/netip"
	"testing"
)

func testPolicy(allow ...string) *peerPolicy {
	cfg := &Config{
		RelayIP:    net.ParseIP("203.0.113.10"),
		MediaAddrs: []netip.AddrPort{netip.MustParseAddrPort("203.0.113.10:7882"), netip.MustParseAddrPort("203.0.113.10:7881")},
		DenyAddrs:  []netip.AddrPort{netip.MustParseAddrPort("203.0.113.10:7880"), netip.MustParseAddrPort("0.0.0.0:9100")},
	}
	for _, a := range allow {
		cfg.AllowPeers = append(cfg.AllowPeers, netip.MustParsePrefix(a))
	}
	return newPeerPolicy(cfg)
}

// TestPolicyRefusesByDefault lists every range RFC 8656 §21 and the issue
// name, in the forms a client can spell them.
func TestPolicyRefusesByDefault(t *testing.T) {
	p := testPolicy()
	for _, tc := range []struct{ addr, class string }{
		{"127.0.0.1", classLoopback},
		{"127.1.2.3", classLoopback},
		{"::ffff:127.0.0.1", classLoopback},
		{"::ffff:7f00:1", classLoopback},
		{"::1", classLoopback},
		{"0.0.0.0", classUnspecified},
		{"::", classUnspecified},
		{"::ffff:0.0.0.0", classUnspecified},
		{"0.1.2.3", classThisNetwork},
		{"10.0.0.1", classPrivate},
		{"172.16.0.1", classPrivate},
		{"172.31.255.255", classPrivate},
		{"192.168.0.1", classPrivate},
		{"::ffff:192.168.0.1", classPrivate},
		{"fc00::1", classPrivate},
		{"fd00:ec2::254", classPrivate},
		{"fec0::1", classPrivate},
		{"100.64.0.1", classShared},
		{"100.127.255.255", classShared},
		{"169.254.169.254", classLinkLocal},
		{"::ffff:169.254.169.254", classLinkLocal},
		{"fe80::1", classLinkLocal},
		{"fe80::1%eth0", classLinkLocal},
		{"224.0.0.1", classMulticast},
		{"239.255.255.250", classMulticast},
		{"ff02::1", classMulticast},
		{"255.255.255.255", classBroadcast},
		{"240.0.0.1", classReserved},
		{"::127.0.0.1", classIPv4Compat},
		{"::8.8.8.8", classIPv4Compat},
		{"64:ff9b::7f00:1", classLoopback},
		{"64:ff9b::a9fe:a9fe", classLinkLocal},
		{"64:ff9b:1::a00:1", classPrivate},
		{"2002:a00:1::1", classPrivate},
		{"2002:7f00:1::", classLoopback},
		{"203.0.113.10", classOwnAddress}, // only as the data path's own_port; see below
	} {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			want := tc.class
			if tc.class == classOwnAddress {
				want = "" // a media IP is permitted; its ports are checked per datagram
			}
			if got := p.checkIP(a); got != want {
				t.Errorf("checkIP(%s) = %q, want %q", a, got, want)
			}
			wantPort := tc.class
			if tc.class == classOwnAddress {
				wantPort = classOwnPort
			}
			if got := p.checkAddrPort(netip.AddrPortFrom(a, 443)); got != wantPort {
				t.Errorf("checkAddrPort(%s:443) = %q, want %q", a, got, wantPort)
			}
		})
	}
}

func TestPolicyAllows(t *testing.T) {
	p := testPolicy("127.0.0.0/8", "::ffff:10.1.0.0/112")
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"8.8.8.8:53", true},
		{"[2001:4860:4860::8888]:53", true},
		{"100.63.255.255:1", true},      // just below 100.64.0.0/10
		{"100.128.0.0:1", true},         // just above
		{"172.32.0.1:1", true},          // just above 172.16.0.0/12
		{"[64:ff9b::808:808]:53", true}, // NAT64 of a public address
		{"203.0.113.10:7882", true},     // media, UDP
		{"[::ffff:203.0.113.10]:7881", true},
		{"203.0.113.10:7880", false}, // the node's HTTP port
		{"203.0.113.10:22", false},   // any other port of the node
		{"8.8.8.8:9100", false},      // a wildcard deny: that port anywhere
		{"127.0.0.1:5000", true},     // AllowPeers
		{"[::ffff:127.0.0.1]:5000", true},
		{"127.255.0.1:5000", true},
		{"10.1.2.3:5000", true}, // AllowPeers given in mapped form
		{"10.2.0.1:5000", false},
		{"127.0.0.1:9100", false}, // DenyAddrs win over AllowPeers
	} {
		ap := netip.MustParseAddrPort(tc.addr)
		if got := p.checkAddrPort(ap) == ""; got != tc.ok {
			t.Errorf("checkAddrPort(%s) allowed = %v, want %v (class %q)", ap, got, tc.ok, p.checkAddrPort(ap))
		}
	}
	if p.checkIP(netip.Addr{}) != classInvalid || p.checkAddrPort(netip.AddrPort{}) != classInvalid {
		t.Error("the zero address is not refused as invalid")
	}
}

// FuzzPolicyMappedForms: the IPv4-mapped IPv6 spelling of any IPv4 address
// is judged exactly like the address itself, in both checks.
func FuzzPolicyMappedForms(f *testing.F) {
	for _, s := range [][]byte{{127, 0, 0, 1}, {0, 0, 0, 0}, {169, 254, 169, 254}, {8, 8, 8, 8}, {203, 0, 113, 10}} {
		f.Add(s, uint16(7882))
	}
	p := testPolicy("192.0.2.0/24")
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		if len(b) != 4 {
			return
		}
		v4 := netip.AddrFrom4([4]byte(b))
		mapped := netip.AddrFrom16(v4.As16())
		if p.checkIP(v4) != p.checkIP(mapped) {
			t.Fatalf("checkIP differs for %s and %s", v4, mapped)
		}
		if p.checkAddrPort(netip.AddrPortFrom(v4, port)) != p.checkAddrPort(netip.AddrPortFrom(mapped, port)) {
			t.Fatalf("checkAddrPort differs for %s and %s port %d", v4, mapped, port)
		}
		if forbiddenClass(v4) == "" && forbiddenClass(netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})) != "" {
			t.Fatalf("NAT64 form of public %s refused", v4)
		}
	})
}

// TestPolicyRefusesOwnListeners: the TURN listeners' own ports are refused
// without being listed, at their address and at RelayIP, even inside
// AllowPeers.
func TestPolicyRefusesOwnListeners(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := newPeerPolicy(&Config{
		UDP: pc, TLS: ln, RelayIP: net.ParseIP("203.0.113.10"),
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	udpPort := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	tlsPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	for _, ap := range []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), udpPort), // wildcard-bound: any address
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tlsPort),
		netip.AddrPortFrom(netip.MustParseAddr("203.0.113.10"), tlsPort),
	} {
		if got := p.checkAddrPort(ap); got != classOwnPort {
			t.Errorf("checkAddrPort(%s) = %q, want %q", ap, got, classOwnPort)
		}
	}
	if got := p.checkAddrPort(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tlsPort+1)); got != "" {
		t.Errorf("another loopback port inside AllowPeers refused: %q", got)
	}
}
