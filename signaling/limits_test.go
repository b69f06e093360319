package signaling

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/pion/webrtc/v4"
)

// TestLimits hits each limit and checks its answer.
func TestLimits(t *testing.T) {
	srv := newTestServer(t, room.Config{MaxRooms: 1}, func(c *Config) {
		c.Limits = Limits{MaxConnsPerIP: 6, ConnBurstPerIP: 1000, ConnRatePerIP: 1000, MsgRate: 5, MsgBurst: 10, MaxCandidates: 3, MaxTracks: 2}
	})
	joinRaw := func(t *testing.T, identity string) *websocket.Conn {
		c := testclient.Dial(t, srv.url)
		testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", identity, room.RoleStudent)})
		if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != TypeJoined {
			t.Fatalf("join: %+v %v", m, err)
		}
		return c
	}

	t.Run("foreign origin", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := http.Header{"Origin": []string{"https://evil.example"}}
		_, resp, err := websocket.Dial(ctx, srv.url, &websocket.DialOptions{HTTPHeader: h})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("foreign origin: %v %v", resp, err)
		}
	})
	t.Run("too many tracks", func(t *testing.T) {
		c := joinRaw(t, "tracks")
		testclient.Send(t, c, map[string]any{"v": 1, "type": "offer", "sdp": offerWith(t, 3), "id": "o"})
		if m, err := nextNonSignal(c); err != nil || m.Code != CodeTooManyTracks || m.Ref != "o" {
			t.Fatalf("got %+v %v", m, err)
		}
		c.CloseNow()
	})
	t.Run("too many candidates", func(t *testing.T) {
		c := joinRaw(t, "cands")
		var last testclient.Msg
		for i := range 4 {
			testclient.Send(t, c, map[string]any{"v": 1, "type": "candidate", "id": fmt.Sprint(i),
				"candidate": map[string]any{"candidate": fmt.Sprintf("candidate:%d 1 udp 2130706431 127.0.0.1 %d typ host", i, 40000+i), "sdpMid": "0"}})
		}
		for {
			m, err := testclient.Recv(c, 2*time.Second)
			if err != nil {
				break
			}
			last = m
		}
		if last.Code != CodeTooManyCandidates || last.Ref != "3" {
			t.Fatalf("fourth candidate got %+v", last)
		}
		c.CloseNow()
	})
	t.Run("too many rooms", func(t *testing.T) {
		c := testclient.Dial(t, srv.url)
		testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-2", "other", room.RoleStudent)})
		if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Code != CodeTooManyRooms {
			t.Fatalf("got %+v %v", m, err)
		}
	})
	t.Run("message rate", func(t *testing.T) {
		c := joinRaw(t, "chatty")
		for range 40 {
			testclient.Send(t, c, map[string]any{"v": 1, "type": "ping"})
		}
		pongs, limited := 0, 0
		for {
			m, err := testclient.Recv(c, time.Second)
			if err != nil {
				break
			}
			switch {
			case m.Type == TypePong:
				pongs++
			case m.Code == CodeRateLimited:
				limited++
			}
		}
		if pongs > 15 || limited != 1 {
			t.Fatalf("40 pings at a limit of 5/s, burst 10: %d answered, %d rate_limited errors (want ≤ 15 and exactly 1)", pongs, limited)
		}
		c.CloseNow()
	})
	t.Run("connections per address", func(t *testing.T) {
		var open []*websocket.Conn
		defer func() {
			for _, c := range open {
				c.CloseNow()
			}
		}()
		refused := 0
		for range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, resp, err := websocket.Dial(ctx, srv.url, nil)
			cancel()
			if err != nil {
				if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
					t.Fatalf("dial refused without 429: %v %v", resp, err)
				}
				refused++
				continue
			}
			open = append(open, c)
		}
		if len(open) > 6 || refused == 0 {
			t.Fatalf("%d connections open from one address with a limit of 6 (%d refused)", len(open), refused)
		}
	})
}

// offerWith returns a pion offer that sends n video tracks.
func offerWith(t *testing.T, n int) string {
	t.Helper()
	pc, err := testclient.NewPionAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range n {
		if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(offer.SDP, "m=video") {
		t.Fatal("no video in offer")
	}
	return offer.SDP
}

// TestAddressLimits: the message rate holds per address, all its
// connections together (opening more connections does not multiply it);
// new connections beyond the address's rate are refused 429 naming the
// reason, counted; a page origin listed in AllowedOrigins is accepted.
func TestAddressLimits(t *testing.T) {
	refusals := &refusalCounter{}
	srv := newTestServer(t, room.Config{}, func(c *Config) {
		c.Limits = Limits{MaxConnsPerIP: 50, ConnRatePerIP: 0.001, ConnBurstPerIP: 6, MsgRate: 100, MsgBurst: 100, MsgRatePerIP: 5, MsgBurstPerIP: 20}
		c.AllowedOrigins = []string{"exam.example.com"}
		c.Observer = refusals
	})
	var conns []*websocket.Conn
	for i := range 4 {
		c := testclient.Dial(t, srv.url)
		testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", fmt.Sprintf("s%d", i), room.RoleStudent)})
		if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Type != TypeJoined {
			t.Fatalf("join: %+v %v", m, err)
		}
		conns = append(conns, c)
	}
	// 4 × 15 pings: within each connection's own limit (burst 100), far
	// over the address's (burst 20 less the 4 joins).
	for _, c := range conns {
		for range 15 {
			testclient.Send(t, c, map[string]any{"v": 1, "type": "ping"})
		}
	}
	pongs, limited := 0, 0
	for _, c := range conns {
		for {
			m, err := testclient.Recv(c, 500*time.Millisecond)
			if err != nil {
				break
			}
			switch {
			case m.Type == TypePong:
				pongs++
			case m.Code == CodeRateLimited && strings.Contains(m.Message, "from your address"):
				limited++
			}
		}
	}
	if pongs > 20 || limited == 0 {
		t.Errorf("60 pings over 4 connections of one address (burst 20): %d answered, %d rate_limited; want ≤ 20 and some refused", pongs, limited)
	}
	if refusals.count(CodeRateLimited) == 0 {
		t.Error("rate_limited not counted")
	}

	// Connection rate: 4 used of a burst of 6, refilling at nearly zero.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{"Origin": []string{"https://exam.example.com"}}
	c, _, err := websocket.Dial(ctx, srv.url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("a listed page origin was refused: %v", err)
	}
	c.CloseNow()
	testclient.Dial(t, srv.url).CloseNow() // the 6th
	_, resp, err := websocket.Dial(ctx, srv.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the 7th connection in a burst of 6: %v %v, want 429", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "connection_rate") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 body %q, Retry-After %q: want the reason and a retry hint", body, resp.Header.Get("Retry-After"))
	}
	if refusals.count("connection_rate") != 1 {
		t.Errorf("connection_rate refusals counted %d, want 1", refusals.count("connection_rate"))
	}
	for _, c := range conns {
		c.CloseNow()
	}
}

// TestDeadAndSlowClients: a client that stops answering pings (its
// network died) is dropped within a ping timeout; one that reads nothing
// while the server has much to send it is dropped by its write deadline
// or its full queue (slow_consumer) long before any ping would notice.
// Both free their seats; a proctor's media from a student goes on.
func TestDeadAndSlowClients(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ping  time.Duration
		flood bool
	}{
		{"dead peer", 200 * time.Millisecond, false},
		{"slow reader", time.Minute, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusals := &refusalCounter{}
			srv := newTestServer(t, room.Config{}, func(c *Config) {
				c.PingInterval, c.PingTimeout, c.WriteTimeout = tc.ping, 300*time.Millisecond, time.Second
				c.Limits = Limits{MsgRate: 10000, MsgBurst: 10000, MsgRatePerIP: 10000, MsgBurstPerIP: 10000}
				c.Observer = refusals
			})
			proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
			alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
			testclient.Eventually(t, 10*time.Second, "alice's media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 20 })
			base := srv.rooms.Participants()

			// It joins, then reads nothing: coder/websocket answers pings
			// only while reading, so no pong comes either.
			c := testclient.Dial(t, srv.url)
			testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mint(t, "exam-1", "mallory", room.RoleStudent)})
			testclient.Eventually(t, 5*time.Second, "joined", func() bool { return srv.rooms.Participants() == base+1 })
			start := time.Now()
			if tc.flood {
				// 64 KiB pongs (a ping's ts is echoed) asked for faster
				// than it reads: its socket fills, then its queue.
				ts := strings.Repeat("9", 64<<10)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					for range 1000 {
						if c.Write(ctx, websocket.MessageText, []byte(`{"v":1,"type":"ping","ts":`+ts+`}`)) != nil {
							return
						}
					}
				}()
			}
			testclient.Eventually(t, 10*time.Second, "the client dropped", func() bool { return srv.rooms.Participants() == base })
			t.Logf("dropped after %v (slow_consumer refusals: %d)", time.Since(start).Round(time.Millisecond), refusals.count(CodeSlowConsumer))
			if tc.flood && time.Since(start) > 5*time.Second {
				t.Errorf("a slow reader held its session %v", time.Since(start))
			}
			before := proctor.PacketsFrom(alice.Me.SID)
			testclient.Eventually(t, 5*time.Second, "alice's media after", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+20 })
		})
	}
}
