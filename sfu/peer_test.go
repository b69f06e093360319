package sfu

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// recorder is a Signaler that keeps what the peer signalled, in order.
type recorder struct {
	mu   sync.Mutex
	sent []string // "offer", "answer" or "candidate"
}

func (r *recorder) note(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, kind)
}

func (r *recorder) SendOffer(string)        { r.note("offer") }
func (r *recorder) SendAnswer(string)       { r.note("answer") }
func (r *recorder) SendCandidate(Candidate) { r.note("candidate") }

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.sent...)
}

// newTestEngine is an Engine on a loopback UDP port, quiet, closed when
// the test ends.
func newTestEngine(tb testing.TB) *Engine {
	tb.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	e, err := New(Config{UDP: udp, IncludeLoopback: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// TestCandidatesFollowTheAnswer: the server's candidates are gathered
// while it answers, but none may reach the client before the answer: a
// client refuses a candidate it gets before its remote description, and
// a relay-only client then never opens its TURN allocation to the node.
func TestCandidatesFollowTheAnswer(t *testing.T) {
	e := newTestEngine(t)

	client, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := client.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}

	// Many peers, since the race the hold-back closes is a matter of
	// scheduling: gathering on a shared mux finishes within microseconds.
	for range 20 {
		rec := &recorder{}
		p, err := e.NewPeer(PeerConfig{ID: "PA_order", Signal: rec, Publish: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.HandleOffer(offer.SDP, nil); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for len(rec.snapshot()) < 2 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		sent := rec.snapshot()
		if len(sent) < 2 {
			t.Fatalf("signalled %v, want an answer and a host candidate", sent)
		}
		if sent[0] != "answer" {
			t.Fatalf("signalled %v: a candidate went out before the answer", sent)
		}
		p.Close()
	}
}

// TestEarlyCandidatesBounded: before its first remote description a Peer
// holds at most 64 trickled candidates (each costs memory until applied);
// the 65th is refused with ErrTooManyCandidates, and a malformed one is
// refused at once.
func TestEarlyCandidatesBounded(t *testing.T) {
	e := newTestEngine(t)
	p, err := e.NewPeer(PeerConfig{ID: "PA_c", Signal: &recorder{}, Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range maxEarlyCandidates {
		c := Candidate{Candidate: fmt.Sprintf("candidate:%d 1 udp 2122260223 192.0.2.1 %d typ host", i, 50000+i)}
		if err := p.AddCandidate(c); err != nil {
			t.Fatalf("candidate %d: %v", i, err)
		}
	}
	if err := p.AddCandidate(Candidate{Candidate: "candidate:99 1 udp 2122260223 192.0.2.1 40000 typ host"}); !errors.Is(err, ErrTooManyCandidates) {
		t.Errorf("candidate %d: %v, want ErrTooManyCandidates", maxEarlyCandidates+1, err)
	}
	if err := p.AddCandidate(Candidate{Candidate: "candidate:garbage"}); err == nil {
		t.Error("a malformed candidate was accepted")
	}
}
