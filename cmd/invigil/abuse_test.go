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
	dto "github.com/prometheus/client_model/go"
)

// TestAbuse attacks a live node while a proctor watches a student: 2,000
// WebSocket connections that never join, 10,000 malformed frames, 100
// joins with forged tokens, and a student spamming proctor requests.
// Afterwards the node serves, its heap is back within 10% of where it
// was, the watched student lost < 1% of media, and every attack shows in
// the metrics.
func TestAbuse(t *testing.T) {
	if testing.Short() {
		t.Skip("attack run")
	}
	// The join timeout is raised so the idle connections outlive the
	// attack; TestJoinTimeout in signaling covers it.
	srv := startServe(t, "--api-secret", secret, "--join-timeout", "2m")
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/v1/rtc"
	proctor := testclient.Join(t, ws, secret, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, ws, secret, "exam-1", "alice", room.RoleStudent)
	bob := testclient.Join(t, ws, secret, "exam-1", "bob", room.RoleStudent)
	// Past 80 packets the clients' own resend buffers are full: from then
	// on the process's heap moves with the server's alone.
	testclient.Eventually(t, 10*time.Second, "alice's media at the proctor", func() bool { return proctor.VideoFrom(alice.Me.SID).Packets > 80 })
	// Warm-up: one burst of refused connections, like the attack's,
	// before the baseline. The Go runtime keeps the descriptors of
	// finished goroutines for reuse and never frees them; without this
	// the first burst's peak would count as growth.
	warm := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				if resp, err := warm.Get(srv.base + "/healthz"); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	// And as many goroutines at once as the attack will have (client and
	// server sides of 2,100 connections, several each): the runtime keeps
	// every goroutine descriptor it ever made (allgs) on the heap, a high
	// water mark of the process, not memory the node holds.
	release := make(chan struct{})
	for range 16000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
	}
	close(release)
	wg.Wait()
	before := parse(t, scrape(t, srv.base))
	heapBefore := heapInUse()
	videoBefore := proctor.VideoFrom(alice.Me.SID)

	// Each attack connection is its own TCP connection, as from separate
	// attackers: no keep-alive pool between a refused dial and the next.
	attacker := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	dial := func() (*websocket.Conn, int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPClient: attacker})
		if resp != nil {
			return c, resp.StatusCode, err
		}
		return c, 0, err
	}

	// 1. 100 joins with forged tokens (within the per-address burst).
	var forgedClosed atomic.Int64
	for range 100 {
		c, _, err := dial()
		if err != nil {
			t.Fatalf("forged join dial: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c.Write(ctx, websocket.MessageText, []byte(`{"v":1,"type":"join","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJldmUiLCJyb2xlIjoicHJvY3RvciIsInJvb20iOiJleGFtLTEiLCJleHAiOjk5OTk5OTk5OTl9.Zm9yZ2Vk"}`))
			for {
				if _, _, err := c.Read(ctx); err != nil {
					if websocket.CloseStatus(err) == websocket.StatusPolicyViolation {
						forgedClosed.Add(1)
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if forgedClosed.Load() != 100 {
		t.Errorf("%d of 100 forged joins were closed with policy violation", forgedClosed.Load())
	}
	time.Sleep(time.Second) // the per-address bucket refills a little

	// 2. 2,000 connections that never join, from 20 loopback addresses
	// (127.0.1.1–20, 100 each: within each address's limits, as from 20
	// attacking hosts): all are held open through the attack. Then 150
	// more from one address, past its burst of 100: refused with 429.
	var mu sync.Mutex
	var idle []*websocket.Conn
	var refused, other atomic.Int64
	sem := make(chan struct{}, 64)
	attack := func(n int, from net.IP) {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}).DialContext}}
		for range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, resp, err := websocket.Dial(ctx, ws, &websocket.DialOptions{HTTPClient: client})
				switch {
				case err == nil:
					mu.Lock()
					idle = append(idle, c)
					mu.Unlock()
				case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}()
		}
	}
	for i := range 20 {
		attack(100, net.IPv4(127, 0, 1, byte(1+i)))
	}
	wg.Wait()
	if len(idle) != 2000 || refused.Load() != 0 || other.Load() != 0 {
		t.Fatalf("2,000 idle connections from 20 addresses: %d open, %d refused, %d failed; want all open", len(idle), refused.Load(), other.Load())
	}
	attack(150, net.IPv4(127, 0, 2, 1))
	wg.Wait()
	t.Logf("idle connections: %d held open, %d refused with 429, %d failed otherwise", len(idle), refused.Load(), other.Load())
	// The bucket refills at 20/s while the 150 dial: ~100 plus a few open.
	if other.Load() != 0 || len(idle)-2000 < 100 || refused.Load() < 30 || int64(len(idle)-2000)+refused.Load() != 150 {
		t.Fatalf("150 dials from one address with a burst of 100: %d more open, %d refused; want ~100 and ~50", len(idle)-2000, refused.Load())
	}
	if open := value(parse(t, scrape(t, srv.base)), "invigil_websocket_connections", nil); open < float64(len(idle)) {
		t.Errorf("invigil_websocket_connections %v while %d idle connections are open", open, len(idle))
	}

	attackCtx, endAttack := context.WithTimeout(context.Background(), time.Minute)
	defer endAttack()

	// 3. 10,000 malformed frames over 20 connections, dialed once the
	// per-address bucket has refilled.
	var written atomic.Int64
	time.Sleep(1100 * time.Millisecond)
	var flooders []*websocket.Conn
	for range 20 {
		c, _, err := dial()
		if err != nil {
			t.Fatalf("flooder dial: %v", err)
		}
		flooders = append(flooders, c)
	}
	per := 10000 / len(flooders)
	extra := 10000 - per*len(flooders)
	for i, c := range flooders {
		n := per
		if i == 0 {
			n += extra
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
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
		}()
	}
	// 4. The student spams proctor requests: focus, and ending bob.
	for i := range 500 {
		typ := "focus"
		if i%2 == 1 {
			typ = "end"
		}
		alice.Send(map[string]any{"v": 1, "type": typ, "identity": "bob"})
	}
	wg.Wait()
	var after map[string]*dto.MetricFamily
	delta := func(name string, labels map[string]string) float64 {
		return value(after, name, labels) - value(before, name, labels)
	}
	var malformed, limited, focusRefused, endRefused float64
	// The server works through what it read; then every frame written is
	// either answered as malformed, dropped by the rate limit, or (the
	// student's) refused as forbidden.
	want := float64(written.Load() + 500)
	deadline := time.Now().Add(10 * time.Second)
	eventually := func(what string, cond func() bool) {
		for !cond() {
			if time.Now().After(deadline) {
				t.Logf("websockets open: %v", value(after, "invigil_websocket_connections", nil))
				for _, f := range []string{"invigil_refusals_total", "invigil_signaling_messages_total"} {
					for _, m := range after[f].Metric {
						t.Logf("%s %v %v", f, m.Label, m.Counter.GetValue())
					}
				}
				t.Fatalf("timed out waiting for %s: %d written + 500 focus/end = %v; malformed %v, rate-limited %v, focus refused %v, end refused %v",
					what, written.Load(), want, malformed, limited, focusRefused, endRefused)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	eventually("every frame accounted for", func() bool {
		after = parse(t, scrape(t, srv.base))
		malformed = delta("invigil_signaling_messages_total", map[string]string{"type": "invalid", "result": "error"})
		limited = delta("invigil_refusals_total", map[string]string{"reason": "rate_limited"})
		focusRefused = delta("invigil_signaling_messages_total", map[string]string{"type": "focus", "result": "error"})
		endRefused = delta("invigil_signaling_messages_total", map[string]string{"type": "end", "result": "error"})
		return malformed+limited+focusRefused+endRefused == want
	})

	t.Logf("%d malformed frames written: %v answered as malformed, %v dropped by the rate limit; the student's spam: %v focus, %v end refused",
		written.Load(), malformed, limited, focusRefused, endRefused)
	if written.Load() != 10000 {
		t.Errorf("%d of 10,000 malformed frames were written", written.Load())
	}

	// Every attack is counted.
	if got := delta("invigil_refusals_total", map[string]string{"reason": "connections_per_ip"}) + delta("invigil_refusals_total", map[string]string{"reason": "connection_rate"}); got != float64(refused.Load()) {
		t.Errorf("refused connections counted %v, want %d", got, refused.Load())
	}
	if got := delta("invigil_refusals_total", map[string]string{"reason": "token_invalid"}); got != 100 {
		t.Errorf("forged tokens counted %v, want 100", got)
	}
	if focusRefused == 0 || endRefused == 0 || delta("invigil_refusals_total", map[string]string{"reason": "forbidden"}) != focusRefused+endRefused {
		t.Errorf("the student's forbidden requests were not counted as forbidden")
	}
	// Nobody was ended: bob is still in the room, his media at the proctor.
	for drained := false; !drained; {
		select {
		case m := <-bob.Events:
			if m.Type == "ended" || m.Type == "leave" {
				t.Fatalf("the student's spam ended bob: %+v", m)
			}
		default:
			drained = true
		}
	}
	bobBefore := proctor.PacketsFrom(bob.Me.SID)
	testclient.Eventually(t, 5*time.Second, "bob's media after the spam", func() bool { return proctor.PacketsFrom(bob.Me.SID) > bobBefore+20 })

	// The watched student's media went on.
	videoAfter := proctor.VideoFrom(alice.Me.SID)
	sent := int(videoAfter.Highest - videoBefore.Highest)
	got := videoAfter.Unique - videoBefore.Unique
	loss := 1 - float64(got)/float64(sent)
	t.Logf("during the attack the proctor received %d of alice's %d video packets (loss %.2f%%)", got, sent, 100*loss)
	if sent < 30 || loss >= 0.01 {
		t.Errorf("media loss during the attack %.2f%% over %d packets, want < 1%%", 100*loss, sent)
	}

	// Close the attack; the node lets go of everything it held for it.
	for _, c := range append(idle, flooders...) {
		c.CloseNow()
	}
	// The refused dials left keep-alive connections in the test's own
	// HTTP client; they are the attacker's memory, not the node's.
	http.DefaultClient.CloseIdleConnections()
	testclient.Eventually(t, 15*time.Second, "attack sessions gone", func() bool {
		return value(parse(t, scrape(t, srv.base)), "invigil_websocket_connections", nil) == 3
	})
	after, before = nil, nil // parsed scrapes are the test's, not the node's
	var heapAfter uint64
	deadline = time.Now().Add(15 * time.Second)
	for heapAfter = heapInUse(); float64(heapAfter) > 1.10*float64(heapBefore); heapAfter = heapInUse() {
		if time.Now().After(deadline) {
			t.Fatalf("heap in use %d KiB after the attack, %d KiB before: more than 10%% above", heapAfter>>10, heapBefore>>10)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("heap in use: %d KiB before, %d KiB after", heapBefore>>10, heapAfter>>10)
	if resp, err := http.Get(srv.base + "/healthz"); err != nil || resp.StatusCode != 200 {
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
