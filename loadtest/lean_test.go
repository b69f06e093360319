package loadtest

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/stun/v4"
)

// TestLeanAddr checks the demultiplexer's address numbering both ways,
// across byte boundaries, and that foreign addresses find nobody.
func TestLeanAddr(t *testing.T) {
	for _, i := range []int{0, 1, 254, 255, 256, 65534, 65535, 70000} {
		if got := leanIndex(leanAddr(i)); got != i {
			t.Errorf("leanIndex(leanAddr(%d)) = %d (%v)", i, got, leanAddr(i))
		}
	}
	for _, a := range []string{"127.0.0.1", "10.1.0.1", "::1"} {
		if i := leanIndex(netip.MustParseAddr(a)); i >= 0 {
			t.Errorf("%s maps to participant %d", a, i)
		}
	}
}

// TestLeanNACK reads the NACKs and reports the lean client writes with
// pion/rtcp, an independent parser.
func TestLeanNACK(t *testing.T) {
	for _, tc := range []struct {
		name        string
		first, last uint16
		want        int
	}{
		{"one", 100, 100, 1}, {"seventeen", 100, 116, 17}, {"eighteen", 100, 117, 18},
		{"across wrap", 65530, 5, 12}, {"capped", 0, 200, 17 * maxNACKItems},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendNACK(make([]byte, 0, 128), 7, 9, tc.first, tc.last)
			pkts, err := rtcp.Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			n, ok := pkts[0].(*rtcp.TransportLayerNack)
			if !ok || n.SenderSSRC != 7 || n.MediaSSRC != 9 {
				t.Fatalf("%#v", pkts[0])
			}
			var seqs []uint16
			for _, p := range n.Nacks {
				seqs = append(seqs, p.PacketList()...)
			}
			if len(seqs) != tc.want || seqs[0] != tc.first {
				t.Errorf("NACKed %d from %d, want %d from %d", len(seqs), seqs[0], tc.want, tc.first)
			}
			for i, s := range seqs {
				if s != tc.first+uint16(i) {
					t.Fatalf("sequence %d is %d", i, s)
				}
			}
		})
	}
	rr := appendRR(nil, 5, []reportBlock{{ssrc: 9, fractionLost: 3, lost: 4, highest: 70000, lsr: 1, dlsr: 2}})
	pkts, err := rtcp.Unmarshal(rr)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := pkts[0].(*rtcp.ReceiverReport); !ok || len(r.Reports) != 1 || r.Reports[0].LastSequenceNumber != 70000 || r.Reports[0].TotalLost != 4 {
		t.Errorf("%#v", pkts[0])
	}
	sr := appendSR(nil, 11, 1<<40, 90000, 3, 300)
	if pkts, err := rtcp.Unmarshal(sr); err != nil || pkts[0].(*rtcp.SenderReport).PacketCount != 3 {
		t.Errorf("SR: %v %#v", err, pkts)
	}
}

// TestLeanBindingRequest checks an ICE check as pion/stun reads it
// (RFC 8445 §7.1.1): USERNAME node:client, the participant's role with
// the same tiebreaker on every check, USE-CANDIDATE only when
// controlling and nominating, integrity with the node's password, a
// fingerprint.
func TestLeanBindingRequest(t *testing.T) {
	for _, controlling := range []bool{true, false} {
		lp := &leanPeer{ufrag: "client", nodeUfrag: "node", nodePwd: "nodepasswordnodepassword",
			controlling: controlling, tieBreaker: 0x0123456789abcdef}
		for _, nominate := range []bool{true, false} {
			m := &stun.Message{Raw: lp.bindingRequest(nominate)}
			if err := m.Decode(); err != nil {
				t.Fatal(err)
			}
			var u stun.Username
			if err := u.GetFrom(m); err != nil || u.String() != "node:client" {
				t.Errorf("username %q %v", u, err)
			}
			if m.Contains(stun.AttrUseCandidate) != (nominate && controlling) || !m.Contains(stun.AttrPriority) {
				t.Errorf("controlling %v, nominate %v: attributes %v", controlling, nominate, m.Attributes)
			}
			var role ice.AttrControl
			if err := role.GetFrom(m); err != nil || role.Tiebreaker != lp.tieBreaker ||
				(role.Role == ice.Controlling) != controlling {
				t.Errorf("controlling %v: role %v, tiebreaker %x, %v", controlling, role.Role, role.Tiebreaker, err)
			}
			if err := stun.NewShortTermIntegrity(lp.nodePwd).Check(m); err != nil {
				t.Errorf("integrity: %v", err)
			}
			if err := stun.Fingerprint.Check(m); err != nil {
				t.Errorf("fingerprint: %v", err)
			}
		}
	}
}

// TestLeanNodeTransport checks what the lean client takes from a node:
// a full agent's description without candidates (its candidates are
// trickled), an ICE-lite one with its candidate listed, and which
// trickled candidates are used.
func TestLeanNodeTransport(t *testing.T) {
	const head = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
	const section = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n" +
		"a=ice-ufrag:nodeufrag\r\na=ice-pwd:nodepasswordnodepassword\r\n" +
		"a=fingerprint:sha-256 AA:BB\r\na=setup:active\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\n"
	full, err := parseNodeSDP(head + section)
	if err != nil {
		t.Fatal(err)
	}
	if full.lite || full.candidate.IsValid() || full.setup != "active" || full.ufrag != "nodeufrag" {
		t.Errorf("full agent: lite %v, candidate %v, setup %q, ufrag %q", full.lite, full.candidate, full.setup, full.ufrag)
	}
	lite, err := parseNodeSDP(head + "a=ice-lite\r\n" + strings.Replace(section, "a=setup:active", "a=setup:passive", 1) +
		"a=candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host\r\n")
	if err != nil {
		t.Fatal(err)
	}
	if !lite.lite || lite.candidate != netip.MustParseAddrPort("127.0.0.1:7882") || lite.setup != "passive" {
		t.Errorf("lite agent: lite %v, candidate %v, setup %q", lite.lite, lite.candidate, lite.setup)
	}
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{"candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host", true},
		{"candidate:2 1 UDP 2130706431 127.0.0.1 7882 typ host generation 0", true},
		{"candidate:3 1 udp 2130706431 10.0.0.5 7882 typ host", false},
		{"candidate:4 1 tcp 1671430143 127.0.0.1 7881 typ host tcptype passive", false},
		{"candidate:5 1 udp 1694498815 127.0.0.1 7882 typ srflx raddr 0.0.0.0 rport 7882", false},
		{"candidate:6 2 udp 2130706430 127.0.0.1 7883 typ host", false},
		{"", false},
	} {
		if _, ok := udpLoopbackCandidate(tc.line); ok != tc.ok {
			t.Errorf("%q: used %v, want %v", tc.line, ok, tc.ok)
		}
	}
}

// TestSSRCTable checks the proctors' stream lookup against a map: every
// SSRC of tables from empty to several hundred streams is found, and
// SSRCs not in them are not; the larger tables are up to half full, so
// many SSRCs share a home slot and are found by probing.
func TestSSRCTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 4, 5, 50, 333} {
		want := map[uint32]*leanRecv{}
		var all []*leanRecv
		for len(all) < n {
			ssrc := rng.Uint32()
			if _, dup := want[ssrc]; dup {
				continue
			}
			lr := &leanRecv{ssrc: ssrc}
			want[ssrc] = lr
			all = append(all, lr)
		}
		tab := newSSRCTable(all)
		for ssrc, lr := range want {
			if got := tab.find(ssrc); got != lr {
				t.Fatalf("%d streams: %d found %p, want %p", n, ssrc, got, lr)
			}
		}
		for range 1000 {
			ssrc := rng.Uint32()
			if got := tab.find(ssrc); got != want[ssrc] {
				t.Fatalf("%d streams: %d found %p, want %p", n, ssrc, got, want[ssrc])
			}
		}
		if len(tab.all) != n {
			t.Errorf("%d streams: all has %d", n, len(tab.all))
		}
	}
}
