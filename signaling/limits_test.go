package signaling

import (
	"context"
	"fmt"
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
