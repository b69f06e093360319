package sfu

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/invigil/invigil/sfu/internal/rtcpx"
	"github.com/pion/rtp"
)

// The whole packet path, over real loopback sockets: a publisher sends
// one SRTP packet; the node's reader receives it (recvmmsg), decrypts it
// in place, forwards it, encrypts it once per subscriber and sends the
// batch (sendmmsg); every subscriber reads and decrypts its copy.

// pathRound sends one packet and waits for every subscriber's copy.
func (r *pathRoom) round(tb testing.TB, hdr *rtp.Header, payload []byte) {
	r.pub.sendRTP(hdr, payload)
	hdr.SequenceNumber++
	hdr.Timestamp += 3000
	deadline := time.Now().Add(2 * time.Second)
	for _, s := range r.subs {
		if _, err := s.recvRTP(deadline); err != nil {
			tb.Fatalf("a subscriber got no packet: %v", err)
		}
	}
}

// warm sends packets until every subscriber receives, so the first
// keyframe has opened every down-track, and the path is in steady state.
func (r *pathRoom) warm(tb testing.TB, hdr *rtp.Header) {
	key := vp8Payload(true)
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range r.subs {
		for {
			r.pub.sendRTP(hdr, key)
			hdr.SequenceNumber++
			hdr.Timestamp += 3000
			if _, err := s.recvRTP(time.Now().Add(50 * time.Millisecond)); err == nil {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatal("a subscriber never received the keyframe")
			}
		}
	}
	// Drain what the warm-up left queued.
	for _, s := range r.subs {
		for {
			if _, err := s.recvRTP(time.Now().Add(20 * time.Millisecond)); err != nil {
				break
			}
		}
	}
	delta := vp8Payload(false)
	for range 200 {
		r.round(tb, hdr, delta)
	}
}

// TestPathAllocatesNothing: socket read → SRTP decrypt → forward → SRTP
// encrypt → socket write allocates nothing per packet in steady state,
// for one subscriber and for a grid of 25 (the whole process is
// measured, the node's reader included; the Engine's clock is stopped so
// only the packet path runs).
func TestPathAllocatesNothing(t *testing.T) {
	for _, n := range []int{1, 25} {
		t.Run(map[int]string{1: "1 subscriber", 25: "25 subscribers"}[n], func(t *testing.T) {
			e := newPathEngine(t, false)
			r := newPathRoom(t, e, n)
			hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 1000}
			r.warm(t, &hdr)
			delta := vp8Payload(false)
			allocs := testing.AllocsPerRun(500, func() { r.round(t, &hdr, delta) })
			if allocs != 0 {
				t.Fatalf("%v allocations per packet, want 0", allocs)
			}
		})
	}
}

// BenchmarkPath measures the whole path per packet in (publisher to every
// subscriber, both ends' SRTP and sockets included: the node's share is
// in docs/benchmarks.md from `invigil load`).
func BenchmarkPath(b *testing.B) {
	for _, n := range []int{1, 25} {
		b.Run(map[int]string{1: "subscribers=1", 25: "subscribers=25"}[n], func(b *testing.B) {
			e := newPathEngine(b, false)
			r := newPathRoom(b, e, n)
			hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 1000}
			r.warm(b, &hdr)
			delta := vp8Payload(false)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r.round(b, &hdr, delta)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/packet-out")
		})
	}
}

// TestReusePortReaders: with several sockets on one port (SO_REUSEPORT),
// each client's packets reach one reader of the kernel's choosing and
// what the node sends comes from the same port, so a publisher on one
// reader reaches subscribers on any.
func TestReusePortReaders(t *testing.T) {
	conns, err := ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, 3)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{UDP: conns[0], MoreUDP: []net.PacketConn{conns[1], conns[2]}, Logger: slog.New(slog.DiscardHandler), noClock: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if len(e.loops) != 3 {
		t.Fatalf("%d readers, want 3", len(e.loops))
	}
	r := newPathRoom(t, e, 8)
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 10}
	r.warm(t, &hdr)
	used := map[*udpLoop]bool{}
	for _, l := range e.loops {
		if len(l.routesSnapshot()) > 0 {
			used[l] = true
		}
	}
	t.Logf("%d of 3 readers carry clients", len(used))
	for _, s := range r.subs {
		from := s.node
		if from.Port() != uint16(conns[0].LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("node address %v", from)
		}
	}
}

// routesSnapshot copies the reader's routes; while the reader is idle.
func (l *udpLoop) routesSnapshot() map[netip.AddrPort]*Peer {
	out := make(map[netip.AddrPort]*Peer, len(l.routes))
	for a, p := range l.routes {
		out[a] = p
	}
	return out
}

// TestNACKsPublisherLoss: a packet lost between a publisher and the node
// is asked for (Generic NACK, RFC 4585 §6.2.1) on the Engine's clock, and
// once resent reaches the subscriber with its own sequence number.
func TestNACKsPublisherLoss(t *testing.T) {
	e := newPathEngine(t, true)
	r := newPathRoom(t, e, 1)
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 500}
	r.warm(t, &hdr)
	lost := hdr.SequenceNumber + 2
	delta := vp8Payload(false)
	for i := range 5 {
		h := hdr
		h.SequenceNumber += uint16(i)
		h.Timestamp += uint32(i) * 3000
		if h.SequenceNumber != lost {
			r.pub.sendRTP(&h, delta)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for found := false; !found; {
		b, err := r.pub.recvRTCP(deadline)
		if err != nil {
			t.Fatalf("no NACK for seq %d: %v", lost, err)
		}
		it := rtcpx.Packets(b)
		for it.Next() {
			if h := it.Header(); h.Type == rtcpx.TypeRTPFB && h.Count == rtcpx.FmtNACK {
				n, err := rtcpx.ParseNACK(it.Packet())
				if err != nil || n.MediaSSRC != 0x1000 {
					continue
				}
				n.VisitLost(func(seq uint16) { found = found || seq == lost })
			}
		}
	}
	// Resent: the subscriber gets it, between its neighbours' numbers.
	h := hdr
	h.SequenceNumber, h.Timestamp = lost, hdr.Timestamp+2*3000
	r.pub.sendRTP(&h, delta)
	sub := r.subs[0]
	var seqs []uint16
	for range 5 {
		if _, err := sub.recvRTP(time.Now().Add(time.Second)); err != nil {
			t.Fatalf("subscriber got %v, then %v", seqs, err)
		}
		seqs = append(seqs, sub.rhdr.SequenceNumber)
	}
	if slices.Contains(seqs[:4], seqs[4]) || seqs[4] != seqs[1]+1 {
		t.Errorf("subscriber's sequence numbers %v: the resent packet should fill the gap after %d", seqs, seqs[1])
	}
	if n := e.Stats().NACKsSent; n == 0 {
		t.Error("NACKs sent not counted")
	}
}

// TestICERestartFromNewAddress: a publisher whose network changed
// restarts ICE (new credentials in a new offer) and checks from a new
// address; the node admits that address by the new credentials alone
// and its media flows on, over the same DTLS association.
func TestICERestartFromNewAddress(t *testing.T) {
	e := newPathEngine(t, false)
	r := newPathRoom(t, e, 1)
	hdr := rtp.Header{Version: 2, PayloadType: 96, SSRC: 0x1000, Marker: true, SequenceNumber: 10}
	r.warm(t, &hdr)
	pub := r.pub
	old := pub.remote
	pub.local = newCreds()
	pub.publishAgain()
	if pub.remote == old {
		t.Fatal("the node kept its ICE credentials across a restart")
	}
	moved, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { moved.Close() })
	pub.conn = moved
	pub.check()
	key := vp8Payload(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		pub.sendRTP(&hdr, key)
		hdr.SequenceNumber++
		hdr.Timestamp += 3000
		if _, err := r.subs[0].recvRTP(time.Now().Add(50 * time.Millisecond)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no media from the publisher's new address after its ICE restart")
		}
	}
}
