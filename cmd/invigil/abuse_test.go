package main

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
	dto "github.com/prometheus/client_model/go"
)

// TestAbuse attacks a live node while a proctor watches a student: 2,000
// WebSocket connections that never join, 10,000 malformed frames, 100
// joins with forged tokens, and a student spamming proctor requests.
// Afterwards the node serves, its heap is back within 10% of where it
// was, the watched student lost < 1% of media, and every attack shows in
// the metrics. Each phase is a subtest; a failed one stops the rest.
func TestAbuse(t *testing.T) {
	if testing.Short() {
		t.Skip("attack run")
	}
	a := newAbuse(t)
	for _, phase := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"baseline", a.baseline},
		{"forged_tokens", a.forgedTokens},
		{"idle_connections", a.idleConnections},
		{"malformed_frames_and_forbidden_spam", a.floodAndSpam},
		{"every_attack_counted", a.counted},
		{"media_went_on", a.mediaWentOn},
		{"node_lets_go", a.letsGo},
	} {
		if !t.Run(phase.name, phase.run) {
			return
		}
	}
}

// abuse is TestAbuse's node, its clients, and what the phases measure.
type abuse struct {
	srv                 *served
	ws                  string
	proctor, alice, bob *testclient.Client
	// attacker dials each attack connection as its own TCP connection,
	// as from separate attackers: no keep-alive pool between a refused
	// dial and the next.
	attacker *http.Client

	before, after map[string]*dto.MetricFamily
	heapBefore    uint64
	videoBefore   testclient.Video

	idle, flooders []*websocket.Conn
	refused        int64 // idle dials answered 429
	written        int64 // malformed frames written
	focusRefused   float64
	endRefused     float64
}

func newAbuse(t *testing.T) *abuse {
	// The join timeout is raised so the idle connections outlive the
	// attack; TestJoinTimeout in signaling covers it.
	srv := startServe(t, "--api-secret", secret, "--join-timeout", "2m")
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/v1/rtc"
	a := &abuse{srv: srv, ws: ws, attacker: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	a.proctor = testclient.Join(t, ws, secret, "exam-1", "proctor-1", room.RoleProctor)
	a.alice = testclient.Join(t, ws, secret, "exam-1", "alice", room.RoleStudent)
	a.bob = testclient.Join(t, ws, secret, "exam-1", "bob", room.RoleStudent)
	return a
}

// dial opens one attack connection from from (nil: 127.0.0.1).
func (a *abuse) dial(from net.IP) (*websocket.Conn, *http.Response, error) {
	client := a.attacker
	if from != nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}).DialContext}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, a.ws, &websocket.DialOptions{HTTPClient: client})
}

// baseline waits for the watched student's media, warms the runtime up
// and takes the heap and the metrics before the attack.
func (a *abuse) baseline(t *testing.T) {
	// Past 80 packets the clients' own resend buffers are full: from then
	// on the process's heap moves with the server's alone.
	testclient.Eventually(t, 10*time.Second, "alice's media at the proctor", func() bool { return a.proctor.VideoFrom(a.alice.Me.SID).Packets > 80 })
	// Warm-up: one burst of refused connections, like the attack's,
	// before the baseline. The Go runtime keeps the descriptors of
	// finished goroutines for reuse and never frees them; without this
	// the first burst's peak would count as growth.
	warm := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 4 {
				if resp, err := warm.Get(a.srv.base + "/healthz"); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	// And as many goroutines at once as the attack will have (client and
	// server sides of 2,100 connections, several each): the runtime keeps
	// every goroutine descriptor it ever made (allgs) on the heap, a high
	// water mark of the process, not memory the node holds.
	release := make(chan struct{})
	for range 16000 {
		wg.Go(func() { <-release })
	}
	close(release)
	wg.Wait()
	a.before = parse(t, scrape(t, a.srv.base))
	a.heapBefore = heapInUse()
	a.videoBefore = a.proctor.VideoFrom(a.alice.Me.SID)
}

// forgedTokens: 100 joins with forged tokens (within the per-address
// burst of 127.0.0.1) are each closed with policy violation.
func (a *abuse) forgedTokens(t *testing.T) {
	var closed atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		c, _, err := a.dial(nil)
		if err != nil {
			t.Fatalf("forged join dial: %v", err)
		}
		wg.Go(func() {
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.Write(ctx, websocket.MessageText, []byte(`{"v":1,"type":"join","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJldmUiLCJyb2xlIjoicHJvY3RvciIsInJvb20iOiJleGFtLTEiLCJleHAiOjk5OTk5OTk5OTl9.Zm9yZ2Vk"}`))
			for {
				if _, _, err := c.Read(ctx); err != nil {
					if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
						closed.Add(1)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	if closed.Load() != 100 {
		t.Errorf("%d of 100 forged joins were closed with policy violation", closed.Load())
	}
}

// idleConnections: 2,000 connections that never join, from 20 loopback
// addresses (127.0.1.1–20, 100 each: within each address's limits, as
// from 20 attacking hosts), are all held open through the attack. Then
// 150 more from one address, past its burst of 100, are refused with
// 429 past the burst.
func (a *abuse) idleConnections(t *testing.T) {
	var mu sync.Mutex
	var refused, other atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	attack := func(n int, from net.IP) {
		for range n {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				c, resp, err := a.dial(from)
				switch {
				case err == nil:
					mu.Lock()
					a.idle = append(a.idle, c)
					mu.Unlock()
				case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
				}
			})
		}
	}
	for i := range 20 {
		attack(100, net.IPv4(127, 0, 1, byte(1+i)))
	}
	wg.Wait()
	if len(a.idle) != 2000 || refused.Load() != 0 || other.Load() != 0 {
		t.Fatalf("2,000 idle connections from 20 addresses: %d open, %d refused, %d failed; want all open", len(a.idle), refused.Load(), other.Load())
	}
	start := time.Now()
	attack(150, net.IPv4(127, 0, 2, 1))
	wg.Wait()
	elapsed := time.Since(start)
	a.refused = refused.Load()
	opened := len(a.idle) - 2000
	t.Logf("idle connections: %d held open, %d refused with 429, %d failed otherwise; the 150 took %v", len(a.idle), a.refused, other.Load(), elapsed)
	// The bucket holds the burst (100) and refills at the rate (20/s)
	// while the 150 dial, so at most 100 + 20/s × elapsed (+1 for the
	// token in progress) open; on a loaded machine the dials take longer
	// and more may open, never more than that.
	allowed := signaling.DefaultConnBurstPerIP + int(signaling.DefaultConnRatePerIP*elapsed.Seconds()) + 1
	if other.Load() != 0 || opened < signaling.DefaultConnBurstPerIP || opened > allowed || int64(opened)+a.refused != 150 {
		t.Fatalf("150 dials from one address with a burst of %d in %v: %d more open, %d refused; want between %d and %d open, the rest refused",
			signaling.DefaultConnBurstPerIP, elapsed, opened, a.refused, signaling.DefaultConnBurstPerIP, allowed)
	}
	if open := value(parse(t, scrape(t, a.srv.base)), "invigil_websocket_connections", nil); open < float64(len(a.idle)) {
		t.Errorf("invigil_websocket_connections %v while %d idle connections are open", open, len(a.idle))
	}
}

// floodAndSpam: 10,000 malformed frames over 20 connections (from an
// address of their own, 127.0.3.1, so no other phase's dials have used
// its bucket), while the student spams proctor requests: focus, and
// ending bob. Every frame is then accounted for: answered as malformed,
// dropped by the rate limit, or (the student's) refused as forbidden.
func (a *abuse) floodAndSpam(t *testing.T) {
	attackCtx, endAttack := context.WithTimeout(context.Background(), time.Minute)
	defer endAttack()
	var written atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		c, _, err := a.dial(net.IPv4(127, 0, 3, 1))
		if err != nil {
			t.Fatalf("flooder dial: %v", err)
		}
		a.flooders = append(a.flooders, c)
	}
	per := 10000 / len(a.flooders)
	extra := 10000 - per*len(a.flooders)
	for i, c := range a.flooders {
		n := per
		if i == 0 {
			n += extra
		}
		wg.Go(func() {
			// The connection outlives this goroutine: cancelling a
			// coder/websocket Read closes the connection, and with it any
			// frames the server has not read yet.
			ctx := attackCtx
			go func() { // drain replies so the server's writes never block
				for {
					if _, _, err := c.Read(ctx); err != nil {
						return
					}
				}
			}()
			for range n {
				if c.Write(ctx, websocket.MessageText, []byte(`{"v":1,"type":`)) != nil {
					return
				}
				written.Add(1)
			}
		})
	}
	for i := range 500 {
		typ := "focus"
		if i%2 == 1 {
			typ = "end"
		}
		a.alice.Send(map[string]any{"v": 1, "type": typ, "identity": "bob"})
	}
	wg.Wait()
	a.written = written.Load()
	var malformed, limited float64
	want := float64(a.written + 500)
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.after = parse(t, scrape(t, a.srv.base))
		malformed = a.delta("invigil_signaling_messages_total", map[string]string{"type": "invalid", "result": "error"})
		limited = a.delta("invigil_refusals_total", map[string]string{"reason": "rate_limited"})
		a.focusRefused = a.delta("invigil_signaling_messages_total", map[string]string{"type": "focus", "result": "error"})
		a.endRefused = a.delta("invigil_signaling_messages_total", map[string]string{"type": "end", "result": "error"})
		if malformed+limited+a.focusRefused+a.endRefused == want {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("websockets open: %v", value(a.after, "invigil_websocket_connections", nil))
			for _, f := range []string{"invigil_refusals_total", "invigil_signaling_messages_total"} {
				for _, m := range a.after[f].Metric {
					t.Logf("%s %v %v", f, m.Label, m.Counter.GetValue())
				}
			}
			t.Fatalf("timed out waiting for every frame accounted for: %d written + 500 focus/end = %v; malformed %v, rate-limited %v, focus refused %v, end refused %v",
				a.written, want, malformed, limited, a.focusRefused, a.endRefused)
		}
		time.Sleep(100 * time.Millisecond) // polling the node's metrics
	}
	t.Logf("%d malformed frames written: %v answered as malformed, %v dropped by the rate limit; the student's spam: %v focus, %v end refused",
		a.written, malformed, limited, a.focusRefused, a.endRefused)
	if a.written != 10000 {
		t.Errorf("%d of 10,000 malformed frames were written", a.written)
	}
}

// delta is how much a metric grew from the baseline to the last scrape.
func (a *abuse) delta(name string, labels map[string]string) float64 {
	return value(a.after, name, labels) - value(a.before, name, labels)
}

// counted: every attack shows in the metrics, and nobody was ended.
func (a *abuse) counted(t *testing.T) {
	if got := a.delta("invigil_refusals_total", map[string]string{"reason": "connections_per_ip"}) + a.delta("invigil_refusals_total", map[string]string{"reason": "connection_rate"}); got != float64(a.refused) {
		t.Errorf("refused connections counted %v, want %d", got, a.refused)
	}
	if got := a.delta("invigil_refusals_total", map[string]string{"reason": "token_invalid"}); got != 100 {
		t.Errorf("forged tokens counted %v, want 100", got)
	}
	if a.focusRefused == 0 || a.endRefused == 0 || a.delta("invigil_refusals_total", map[string]string{"reason": "forbidden"}) != a.focusRefused+a.endRefused {
		t.Errorf("the student's forbidden requests were not counted as forbidden")
	}
	// Nobody was ended: bob is still in the room, his media at the proctor.
	for drained := false; !drained; {
		select {
		case m := <-a.bob.Events:
			if m.Type == "ended" || m.Type == "leave" {
				t.Fatalf("the student's spam ended bob: %+v", m)
			}
		default:
			drained = true
		}
	}
	bobBefore := a.proctor.PacketsFrom(a.bob.Me.SID)
	testclient.Eventually(t, 5*time.Second, "bob's media after the spam", func() bool { return a.proctor.PacketsFrom(a.bob.Me.SID) > bobBefore+20 })
}

// mediaWentOn: the watched student lost < 1% of its video to the proctor.
func (a *abuse) mediaWentOn(t *testing.T) {
	videoAfter := a.proctor.VideoFrom(a.alice.Me.SID)
	sent := int(videoAfter.Highest - a.videoBefore.Highest)
	got := videoAfter.Unique - a.videoBefore.Unique
	loss := 1 - float64(got)/float64(sent)
	t.Logf("during the attack the proctor received %d of alice's %d video packets (loss %.2f%%)", got, sent, 100*loss)
	if sent < 30 || loss >= 0.01 {
		t.Errorf("media loss during the attack %.2f%% over %d packets, want < 1%%", 100*loss, sent)
	}
}

// letsGo: with the attack's connections closed, the node lets go of
// everything it held for them and still serves.
func (a *abuse) letsGo(t *testing.T) {
	for _, c := range append(a.idle, a.flooders...) {
		c.CloseNow()
	}
	// The closed connections are the attacker's memory, not the node's:
	// the test lets go of them before it weighs the heap.
	a.idle, a.flooders = nil, nil
	// The refused dials left keep-alive connections in the test's own
	// HTTP client; they are the attacker's memory, not the node's.
	http.DefaultClient.CloseIdleConnections()
	testclient.Eventually(t, 15*time.Second, "attack sessions gone", func() bool {
		return value(parse(t, scrape(t, a.srv.base)), "invigil_websocket_connections", nil) == 3
	})
	a.after, a.before = nil, nil // parsed scrapes are the test's, not the node's
	var heapAfter uint64
	deadline := time.Now().Add(15 * time.Second)
	for heapAfter = heapInUse(); float64(heapAfter) > 1.10*float64(a.heapBefore); heapAfter = heapInUse() {
		if time.Now().After(deadline) {
			t.Fatalf("heap in use %d KiB after the attack, %d KiB before: more than 10%% above", heapAfter>>10, a.heapBefore>>10)
		}
		time.Sleep(500 * time.Millisecond) // polling the heap while the runtime frees it
	}
	t.Logf("heap in use: %d KiB before, %d KiB after", a.heapBefore>>10, heapAfter>>10)
	if resp, err := http.Get(a.srv.base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("node not healthy after the attack: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// heapInUse is the process's live heap (bytes of reachable objects) after
// a full collection: what the node still holds, without the free space in
// spans the runtime has not returned yet. Server and clients share the
// process; the clients it measures are the ones that outlive the attack,
// the proctor and the student.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
