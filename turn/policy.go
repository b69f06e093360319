package turn

import (
	"net"
	"net/netip"
	"slices"
)

// Peer classes: why the policy refuses an address. They appear in logs
// under peer_class.
const (
	classUnspecified = "unspecified"     // 0.0.0.0, :: (Linux delivers them to the host itself)
	classThisNetwork = "this_network"    // 0.0.0.0/8 (RFC 791, RFC 1122 §3.2.1.3)
	classLoopback    = "loopback"        // 127.0.0.0/8, ::1
	classPrivate     = "private"         // RFC 1918, fc00::/7 (RFC 4193), fec0::/10 (RFC 3879)
	classShared      = "shared"          // 100.64.0.0/10 (RFC 6598, carrier-grade NAT)
	classLinkLocal   = "link_local"      // 169.254.0.0/16 incl. cloud metadata, fe80::/10
	classMulticast   = "multicast"       // 224.0.0.0/4, ff00::/8
	classBroadcast   = "broadcast"       // 255.255.255.255
	classReserved    = "reserved"        // 240.0.0.0/4 (RFC 1112 §4)
	classIPv4Compat  = "ipv4_compatible" // ::/96 (RFC 4291 §2.5.5.1, deprecated)
	classOwnAddress  = "own_address"     // an address of this node that is not a media address
	classOwnPort     = "own_port"        // a non-media port of this node
	classInvalid     = "invalid"         // not an IP address
)

// peerPolicy decides which peers a relay may reach (RFC 8656 §9.1: the
// server MAY refuse a permission to an address "for any reason"; §21.2.3
// and §21.3 on relaying to the server's own network). It is immutable after
// newPeerPolicy and safe for concurrent use.
//
// Addresses are normalised with netip.Addr.Unmap first, so the IPv4-mapped
// IPv6 form of a refused IPv4 address (::ffff:127.0.0.1) is refused too
// (CVE-2020-26262 and CVE-2026-27624 were coturn bypasses of exactly this).
type peerPolicy struct {
	allow    []netip.Prefix   // AllowPeers, unmapped
	media    []netip.AddrPort // MediaAddrs, unmapped
	mediaIPs []netip.Addr     // the IPs of media
	deny     []netip.AddrPort // DenyAddrs, unmapped; unspecified IP = any
	own      []netip.Addr     // this node's addresses: relay, media and deny IPs
}

func newPeerPolicy(cfg *Config) *peerPolicy {
	p := &peerPolicy{}
	addOwn := func(a netip.Addr) {
		if a.IsValid() && !a.IsUnspecified() && !slices.Contains(p.own, a) {
			p.own = append(p.own, a)
		}
	}
	for _, pre := range cfg.AllowPeers {
		a := pre.Addr()
		bits := pre.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), max(bits-96, 0)
		}
		p.allow = append(p.allow, netip.PrefixFrom(a, bits).Masked())
	}
	for _, ap := range cfg.MediaAddrs {
		ap = unmapAddrPort(ap)
		p.media = append(p.media, ap)
		if !slices.Contains(p.mediaIPs, ap.Addr()) {
			p.mediaIPs = append(p.mediaIPs, ap.Addr())
		}
		addOwn(ap.Addr())
	}
	for _, ap := range append(ownListeners(cfg), cfg.DenyAddrs...) {
		ap = unmapAddrPort(ap)
		p.deny = append(p.deny, ap)
		addOwn(ap.Addr())
	}
	for _, ip := range []net.IP{cfg.RelayIP, cfg.RelayBindIP} {
		if a, ok := netip.AddrFromSlice(ip); ok {
			addOwn(a.Unmap())
		}
	}
	return p
}

// checkIP is the permission check (RFC 8656 §9.1, CreatePermission,
// ChannelBind and Connect), which sees the peer's IP but not its port: ""
// if a relay may have a permission for ip, else the class it is refused
// as. A media IP is allowed even though its other ports are refused by
// checkAddrPort on the data path.
func (p *peerPolicy) checkIP(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return classInvalid
	case slices.Contains(p.mediaIPs, ip), p.allowed(ip):
		return ""
	}
	if class := forbiddenClass(ip); class != "" {
		return class
	}
	if slices.Contains(p.own, ip) {
		return classOwnAddress
	}
	return ""
}

// checkAddrPort is the data-path check of one destination (RFC 8656 §11.2
// Send, §12 ChannelData, RFC 6062 §5.2 Connect): "" if the relay may send
// to ap, else the class it is refused as. Media addresses match first,
// so the SFU's traffic costs a few comparisons.
func (p *peerPolicy) checkAddrPort(ap netip.AddrPort) string {
	ap = unmapAddrPort(ap)
	ip := ap.Addr()
	if slices.Contains(p.media, ap) {
		return ""
	}
	if !ip.IsValid() {
		return classInvalid
	}
	for _, d := range p.deny {
		if d.Port() == ap.Port() && (d.Addr() == ip || d.Addr().IsUnspecified()) {
			return classOwnPort
		}
	}
	if p.allowed(ip) {
		return ""
	}
	if class := forbiddenClass(ip); class != "" {
		return class
	}
	if slices.Contains(p.own, ip) {
		return classOwnPort
	}
	return ""
}

func (p *peerPolicy) allowed(ip netip.Addr) bool {
	for _, pre := range p.allow {
		if pre.Contains(ip) {
			return true
		}
	}
	return false
}

// forbiddenClass returns the class of an unmapped address a relay must not
// reach by default, or "" for a public unicast address. IPv6 forms that
// embed an IPv4 address a router would forward to (NAT64 64:ff9b::/96 and
// 64:ff9b:1::/48 per RFC 6052 and RFC 8215, 6to4 2002::/16 per RFC 3056)
// are judged by the embedded address.
func forbiddenClass(ip netip.Addr) string {
	switch {
	case ip.IsUnspecified():
		return classUnspecified
	case ip.IsLoopback():
		return classLoopback
	case ip.IsPrivate():
		return classPrivate
	case ip.IsLinkLocalUnicast():
		return classLinkLocal
	case ip.IsMulticast():
		return classMulticast
	}
	if ip.Is4() {
		b := ip.As4()
		switch {
		case b[0] == 0:
			return classThisNetwork
		case b[0] == 100 && b[1]&0xc0 == 64:
			return classShared
		case b == [4]byte{255, 255, 255, 255}:
			return classBroadcast
		case b[0] >= 240:
			return classReserved
		}
		return ""
	}
	b := ip.As16()
	switch {
	case b[0] == 0xfe && b[1]&0xc0 == 0xc0: // fec0::/10 site-local
		return classPrivate
	case [12]byte(b[:12]) == [12]byte{}: // ::/96, after :: and ::1 above
		return classIPv4Compat
	case [12]byte(b[:12]) == [12]byte{0, 0x64, 0xff, 0x9b}: // 64:ff9b::/96
		return forbiddenClass(netip.AddrFrom4([4]byte(b[12:16])))
	case [6]byte(b[:6]) == [6]byte{0, 0x64, 0xff, 0x9b, 0, 1}: // 64:ff9b:1::/48
		return forbiddenClass(netip.AddrFrom4([4]byte(b[12:16])))
	case b[0] == 0x20 && b[1] == 0x02: // 2002::/16 6to4
		return forbiddenClass(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return ""
}

// ownListeners returns the TURN server's own listening addresses, which a
// relay must never reach (a relay looping into its own server multiplies
// traffic, RFC 8656 §21.2.1), each also at RelayIP in case the listener is
// bound to a private address behind NAT.
func ownListeners(cfg *Config) []netip.AddrPort {
	var addrs []net.Addr
	if cfg.UDP != nil {
		addrs = append(addrs, cfg.UDP.LocalAddr())
	}
	for _, l := range []net.Listener{cfg.TCP, cfg.TLS} {
		if l != nil {
			addrs = append(addrs, l.Addr())
		}
	}
	relay, _ := netip.AddrFromSlice(cfg.RelayIP)
	var out []netip.AddrPort
	for _, a := range addrs {
		ap := netAddrPort(a)
		if !ap.IsValid() || ap.Port() == 0 {
			continue
		}
		out = append(out, ap)
		if relay.IsValid() {
			out = append(out, netip.AddrPortFrom(relay.Unmap(), ap.Port()))
		}
	}
	return out
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// netAddrPort converts a *net.UDPAddr or *net.TCPAddr to a netip.AddrPort;
// anything else gives the invalid zero value, which the policy refuses.
func netAddrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort()
	case *net.TCPAddr:
		return a.AddrPort()
	}
	return netip.AddrPort{}
}
