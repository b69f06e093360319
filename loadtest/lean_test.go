package loadtest

import (
	"net/netip"
	"testing"

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
// (RFC 8445 §7.1.1): USERNAME node:client, USE-CANDIDATE only while
// nominating, integrity with the node's password, a fingerprint.
func TestLeanBindingRequest(t *testing.T) {
	lp := &leanPeer{ufrag: "client", nodeUfrag: "node", nodePwd: "nodepasswordnodepassword"}
	for _, nominate := range []bool{true, false} {
		m := &stun.Message{Raw: lp.bindingRequest(nominate)}
		if err := m.Decode(); err != nil {
			t.Fatal(err)
		}
		var u stun.Username
		if err := u.GetFrom(m); err != nil || u.String() != "node:client" {
			t.Errorf("username %q %v", u, err)
		}
		if m.Contains(stun.AttrUseCandidate) != nominate || !m.Contains(stun.AttrICEControlling) || !m.Contains(stun.AttrPriority) {
			t.Errorf("nominate %v: attributes %v", nominate, m.Attributes)
		}
		if err := stun.NewShortTermIntegrity(lp.nodePwd).Check(m); err != nil {
			t.Errorf("integrity: %v", err)
		}
		if err := stun.Fingerprint.Check(m); err != nil {
			t.Errorf("fingerprint: %v", err)
		}
	}
}
