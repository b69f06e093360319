package sfu

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TestStalledSubscriberHoldsBackNobody: a room of 25 students and two
// proctors. One proctor reaches the node over ICE-TCP through a relay of
// the test's own that, midway, stops reading what the node sends (its
// socket's receive buffer small; the node bounds what its kernel holds
// unsent, so its writes back up into its own backlog at once, where a send
// buffer left to grow would take ~4 MiB here, 5 s of this room's video).
// The other proctor, on UDP, keeps receiving every student with < 1% loss
// and a p99 one-way delay within 50 ms of what it had before the stall;
// the node counts what it dropped for the stalled one. The clients are
// pion PeerConnections, independent of the node's own stack.
func TestStalledSubscriberHoldsBackNobody(t *testing.T) {
	if testing.Short() {
		t.Skip("25 publishers")
	}
	const students = 25
	e := newTCPEngine(t)
	var tracks []*Track
	var tmu sync.Mutex
	for i := range students {
		pcStudent(t, e, i, func(tr *Track) {
			tmu.Lock()
			tracks = append(tracks, tr)
			tmu.Unlock()
		})
	}
	waitFor(t, 10*time.Second, "every student's track", func() bool {
		tmu.Lock()
		defer tmu.Unlock()
		return len(tracks) == students
	})
	relay := newStallRelay(t, e.tcp.Addr().String())
	control := pcProctor(t, e, tracks, "")
	stalled := pcProctor(t, e, tracks, relay.addr())
	waitFor(t, 15*time.Second, "both proctors receiving every student", func() bool {
		return control.streams() == students && stalled.streams() == students
	})

	window := 4 * time.Second
	control.reset()
	time.Sleep(window) // measuring, not synchronising: a window of traffic
	before := control.result()
	t.Logf("before the stall: %s", before)

	relay.stall()
	time.Sleep(time.Second) // the node's writes back up
	control.reset()
	time.Sleep(window)
	during := control.result()
	t.Logf("while one proctor's link is stalled: %s", during)
	st := e.Stats()
	t.Logf("node drops: %v", dropsByReason(st))

	if during.packets < before.packets*8/10 {
		t.Errorf("the control proctor got %d packets in %s, %d before the stall", during.packets, window, before.packets)
	}
	if during.loss >= 0.01 {
		t.Errorf("the control proctor lost %.2f%% while the other's link stalled", 100*during.loss)
	}
	if during.p99 > before.p99+50*time.Millisecond {
		t.Errorf("the control proctor's p99 delay went from %s to %s", before.p99, during.p99)
	}
	if st.Drops[dropVideoBacklog] == 0 {
		t.Error("the stalled proctor's video was not dropped (and counted) at the node")
	}
}

func dropsByReason(s Stats) map[string]uint64 {
	m := map[string]uint64{}
	for i, n := range s.Drops {
		if n > 0 {
			m[DropReasons[i]] = n
		}
	}
	return m
}

// newTCPEngine is an Engine with its clock on loopback UDP and ICE-TCP.
func newTCPEngine(tb testing.TB) *Engine {
	tb.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	_ = udp.SetReadBuffer(4 << 20)
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(Config{UDP: udp, TCP: tcp, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pcAPI is a pion client API on loopback, UDP or (tcp) ICE-TCP only.
func pcAPI(tb testing.TB, tcp bool) *webrtc.API {
	tb.Helper()
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if tcp {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		tb.Fatal(err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m))
}

// pcStudent publishes a VP8 camera at 30 frames a second (one packet per
// frame, a keyframe each second and on request); each payload carries
// its send time.
func pcStudent(tb testing.TB, e *Engine, i int, onTrack func(*Track)) *Peer {
	tb.Helper()
	pc, err := pcAPI(tb, false).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "camera", fmt.Sprint("student", i))
	if err != nil {
		tb.Fatal(err)
	}
	sender, err := pc.AddTrack(tr)
	if err != nil {
		tb.Fatal(err)
	}
	sig := newTestSignal()
	p, err := e.NewPeer(PeerConfig{ID: fmt.Sprintf("PA_s%d", i), Signal: sig, Publish: true, OnTrack: onTrack})
	if err != nil {
		tb.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		tb.Fatal(err)
	}
	if err := p.HandleOffer(offer.SDP, nil); err != nil {
		tb.Fatal(err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sig.last(tb, false, 1)}); err != nil {
		tb.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var key sync.Mutex // guards wantKey
	wantKey := true
	wg.Add(2)
	go func() { // keyframe requests
		defer wg.Done()
		for {
			if _, _, err := sender.ReadRTCP(); err != nil {
				return
			}
			key.Lock()
			wantKey = true
			key.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		payload := make([]byte, 1000)
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			key.Lock()
			k := wantKey || n%30 == 0
			wantKey = false
			key.Unlock()
			payload[0], payload[1], payload[2], payload[3] = 0x90, 0x80, byte(0x80|n>>8&0x7f), byte(n) // X, S; I; picture ID
			payload[4] = 0x01
			if k {
				payload[4] = 0x00
			}
			binary.BigEndian.PutUint64(payload[20:], uint64(time.Now().UnixNano()))
			_ = tr.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: uint16(n), Timestamp: n * 3000}, Payload: payload})
		}
	}()
	tb.Cleanup(func() {
		close(stop)
		pc.Close()
		wg.Wait()
		p.Close()
	})
	return p
}

// proctorStats measures what one proctor receives of every student.
type proctorStats struct {
	mu       sync.Mutex // guards the fields below
	bySSRC   map[uint32]*streamCount
	delays   []time.Duration
	received int
}

type streamCount struct {
	started     bool
	first, last uint16
	got         int
}

type windowResult struct {
	packets int
	loss    float64
	p99     time.Duration
}

func (r windowResult) String() string {
	return fmt.Sprintf("%d packets, loss %.2f%%, p99 one-way delay %s", r.packets, 100*r.loss, r.p99)
}

func (s *proctorStats) streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bySSRC)
}

// reset starts a measurement window.
func (s *proctorStats) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.bySSRC {
		c.started, c.got = false, 0
	}
	s.delays = s.delays[:0]
	s.received = 0
}

// result is the window's packets, loss (sequence numbers the window
// spanned but did not bring) and p99 delay.
func (s *proctorStats) result() windowResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	expected, got := 0, 0
	for _, c := range s.bySSRC {
		if c.started {
			expected += int(c.last-c.first) + 1
			got += c.got
		}
	}
	r := windowResult{packets: s.received}
	if expected > 0 {
		r.loss = float64(expected-got) / float64(expected)
	}
	if len(s.delays) > 0 {
		d := slices.Clone(s.delays)
		slices.Sort(d)
		r.p99 = d[len(d)*99/100]
	}
	return r
}

func (s *proctorStats) note(ssrc uint32, seq uint16, sent int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.bySSRC[ssrc]
	if c == nil {
		c = &streamCount{}
		s.bySSRC[ssrc] = c
	}
	if !c.started {
		c.started, c.first, c.last = true, seq, seq
	} else if int16(seq-c.last) > 0 {
		c.last = seq
	}
	c.got++
	s.received++
	s.delays = append(s.delays, time.Duration(time.Now().UnixNano()-sent))
}

// pcProctor subscribes a pion client to every track: over UDP, or (relay
// set) over ICE-TCP to that address, which stands for the node's TCP port.
func pcProctor(tb testing.TB, e *Engine, tracks []*Track, relay string) *proctorStats {
	tb.Helper()
	pc, err := pcAPI(tb, relay != "").NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	st := &proctorStats{bySSRC: map[uint32]*streamCount{}}
	var wg sync.WaitGroup
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1500)
			var pkt rtp.Packet
			for {
				n, _, err := tr.Read(buf)
				if err != nil {
					return
				}
				if pkt.Unmarshal(buf[:n]) == nil && len(pkt.Payload) >= 28 {
					st.note(uint32(tr.SSRC()), pkt.SequenceNumber, int64(binary.BigEndian.Uint64(pkt.Payload[20:])))
				}
			}
		}()
	})
	sig := newTestSignal()
	p, err := e.NewPeer(PeerConfig{ID: newID("PA_p"), Signal: sig})
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range tracks {
		if err := p.Subscribe(t, QualityLow); err != nil {
			tb.Fatal(err)
		}
	}
	if err := p.Start(); err != nil {
		tb.Fatal(err)
	}
	offer := sig.last(tb, true, 1)
	if relay != "" {
		offer = viaRelay(tb, offer, relay)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		tb.Fatal(err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		tb.Fatal(err)
	}
	if err := p.HandleAnswer(answer.SDP); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		pc.Close()
		wg.Wait()
		p.Close()
	})
	return st
}

var tcpCandidate = regexp.MustCompile(`(?m)^a=candidate:(\S+ 1 tcp \d+ )(\S+) (\d+)( typ host tcptype passive.*)$`)

// viaRelay keeps only the offer's TCP candidates, pointed at relay.
func viaRelay(tb testing.TB, sdp, relay string) string {
	host, port, err := net.SplitHostPort(relay)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(line, "a=candidate:") && !strings.Contains(line, " tcp ") {
			continue
		}
		out = append(out, tcpCandidate.ReplaceAllString(line, "a=candidate:${1}"+host+" "+port+"${4}"))
	}
	return strings.Join(out, "\r\n")
}

// stallRelay forwards one ICE-TCP connection to the node and, once
// stalled, stops reading what the node sends.
type stallRelay struct {
	ln      net.Listener
	node    string
	stalled chan struct{}
	done    chan struct{} // closed at cleanup
	once    sync.Once
	wg      sync.WaitGroup
}

func newStallRelay(tb testing.TB, node string) *stallRelay {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &stallRelay{ln: ln, node: node, stalled: make(chan struct{}), done: make(chan struct{})}
	var conns []net.Conn
	var mu sync.Mutex // guards conns
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp4", node)
			if err != nil {
				c.Close()
				continue
			}
			// A small receive buffer: when the relay stops reading, the
			// node's side fills within a few packets.
			_ = up.(*net.TCPConn).SetReadBuffer(4096)
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			r.wg.Add(2)
			go func() { defer r.wg.Done(); _, _ = io.Copy(up, c) }()
			go func() {
				defer r.wg.Done()
				buf := make([]byte, 2048)
				for {
					select {
					case <-r.stalled:
						<-r.done // reads nothing more
						return
					default:
					}
					n, err := up.Read(buf)
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	tb.Cleanup(func() {
		close(r.done)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *stallRelay) addr() string { return r.ln.Addr().String() }
func (r *stallRelay) stall()       { r.once.Do(func() { close(r.stalled) }) }

// TestConsentGivesRTT: the node's own consent checks (RFC 7675) reach a
// pion client, which answers them: the session has a round-trip time and
// fresh consent, though the node is ICE-lite and the client publishes
// only (no receiver report could give one).
func TestConsentGivesRTT(t *testing.T) {
	e := newTCPEngine(t)
	p := pcStudent(t, e, 0, nil)
	waitFor(t, 10*time.Second, "a round-trip time from a consent check", func() bool { return p.Stats().RTT > 0 })
	st := p.Stats()
	if st.State != ConnConnected || st.CandidateType == "" {
		t.Errorf("stats %+v", st)
	}
	if st.RTT > time.Second {
		t.Errorf("RTT %s on loopback", st.RTT)
	}
	waitFor(t, 5*time.Second, "the camera's inbound figures", func() bool {
		st := p.Stats()
		return len(st.In) == 1 && st.In[0].Packets > 30 && st.In[0].BitsPerSecond > 0
	})
	t.Logf("stats: %+v", p.Stats())
}
