package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

func adminToken(t testing.TB) string {
	t.Helper()
	tok, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: signaling.AllRooms, Identity: "api", Role: room.RoleAdmin, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type placement struct {
	Room   string `json:"room"`
	NodeID string `json:"node_id"`
	URL    string `json:"url"`
	Code   string `json:"code"`
}

// place asks base's /v1/placement for room.
func place(t testing.TB, base, roomName string, expected int) (int, placement) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/placement?room=%s&expected=%d", base, roomName, expected), nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p placement
	json.NewDecoder(resp.Body).Decode(&p)
	return resp.StatusCode, p
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/v1/rtc" }

// joinReply sends a join to base and returns the first message back.
func joinReply(t *testing.T, base, roomName, identity string, role room.Role) map[string]any {
	t.Helper()
	return joinWith(t, base, testclient.Mint(t, secret, roomName, identity, role))
}

// joinWith sends a join with token to base and returns the first message
// back.
func joinWith(t *testing.T, base, token string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, wsURL(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	b, _ := json.Marshal(map[string]any{"v": 1, "type": "join", "token": token, "id": "j"})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(msg, &m)
	return m
}

// TestClusterRedirect: two nodes on one Redis. A room placed on one node
// is joined through the other: the join is answered with a redirect to
// the owner's URL, and joining there, media flows.
func TestClusterRedirect(t *testing.T) {
	rs := testredis.Start(t, 0)
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a")
	b := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "b")
	nodes := map[string]string{"a": a.base, "b": b.base}
	var p placement
	testclient.Eventually(t, 5*time.Second, "placement through node a", func() bool {
		code, got := place(t, a.base, "exam-1", 3)
		p = got
		return code == http.StatusOK
	})
	if nodes[p.NodeID] != p.URL {
		t.Fatalf("placement %+v: URL is not that node's public URL (%v)", p, nodes)
	}
	other := a.base
	if p.NodeID == "a" {
		other = b.base
	}
	m := joinReply(t, other, "exam-1", "proctor-1", room.RoleProctor)
	if m["type"] != "error" || m["code"] != "redirect" || m["url"] != p.URL {
		t.Fatalf("join on the other node answered %v; want a redirect to %s", m, p.URL)
	}
	proctor := testclient.Join(t, wsURL(p.URL), secret, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(p.URL), secret, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media on the owning node", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })

	// A draining node gets no new room.
	drainNode := p.URL
	req, _ := http.NewRequest(http.MethodPost, drainNode+"/v1/node/drain", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testclient.Eventually(t, 6*time.Second, "a new room placed away from the draining node", func() bool {
		code, q := place(t, other, fmt.Sprintf("exam-new-%d", time.Now().UnixNano()), 3)
		return code == http.StatusOK && q.URL != drainNode
	})
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "media on the draining node's room", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+30 })
}

// TestClusterRedisRestart: Redis restarting under a running room does
// not touch its media or /readyz; placement answers 503 meanwhile and
// finds the room on its node again once Redis is back.
func TestClusterRedisRestart(t *testing.T) {
	rs := testredis.Start(t, 0)
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a")
	testclient.Eventually(t, 5*time.Second, "placement", func() bool { code, _ := place(t, a.base, "exam-1", 2); return code == http.StatusOK })
	proctor := testclient.Join(t, wsURL(a.base), secret, "exam-1", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(a.base), secret, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })

	rs.Stop()
	if code, p := place(t, a.base, "exam-1", 2); code != http.StatusServiceUnavailable || p.Code != "unavailable" {
		t.Errorf("placement with Redis down: HTTP %d %+v, want 503 unavailable", code, p)
	}
	resp, err := http.Get(a.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d with Redis down; it must stay 200 while the node serves", resp.StatusCode)
	}
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "media with Redis down", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+60 })

	testclient.Eventually(t, 5*time.Second, "the node noticing the outage", func() bool {
		return strings.Contains(a.stderr.String(), "cluster store unreachable")
	})
	testredis.Start(t, rs.Port) // empty: it kept nothing
	testclient.Eventually(t, 10*time.Second, "the room placed on its node again", func() bool {
		code, p := place(t, a.base, "exam-1", 2)
		return code == http.StatusOK && p.NodeID == "a"
	})
	if !strings.Contains(a.stderr.String(), "cluster store unreachable") || !strings.Contains(a.stderr.String(), "cluster store reachable again") {
		t.Errorf("no log line for the outage and the recovery:\n%s", a.stderr.String())
	}
	if v := value(parse(t, scrape(t, a.base)), "invigil_redis_errors_total", nil); v < 1 {
		t.Errorf("invigil_redis_errors_total %v", v)
	}
}

// nodeProc is `invigil serve` in a child process (this test binary re-run as
// the command), so that it can be SIGKILLed.
type nodeProc struct {
	base string
	cmd  *exec.Cmd
	logs *logbuf.Buffer // its stderr
}

func startNodeProc(t *testing.T, args ...string) *nodeProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, append([]string{"serve", "--api-secret", secret, "--http-addr", "127.0.0.1:0", "--rtc-udp-port", "0",
		"--rtc-tcp-port", "0", "--node-ip", "127.0.0.1", "--turn-udp-port", "0", "--data-dir", t.TempDir()}, args...)...)
	cmd.Env = append(os.Environ(), "INVIGIL_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeProc{cmd: cmd, logs: &logbuf.Buffer{}}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	addr := regexp.MustCompile(`http_addr=(127\.0\.0\.1:\d+)`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			n.logs.Write(append(sc.Bytes(), '\n'))
			if m := addr.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-found:
		n.base = "http://" + a
	case <-time.After(15 * time.Second):
		t.Fatal("node did not start")
	}
	return n
}

// TestClusterNodeLoss: the node holding a room is SIGKILLed; within 20 s
// placement moves the room to a live node, and clients that re-run
// placement and rejoin there get media again.
func TestClusterNodeLoss(t *testing.T) {
	rs := testredis.Start(t, 0)
	a := startNodeProc(t, "--redis-url", rs.URL(), "--node-id", "a", "--log-level", "info")
	b := startNodeProc(t, "--redis-url", rs.URL(), "--node-id", "b", "--log-level", "info")
	var p placement
	testclient.Eventually(t, 5*time.Second, "both nodes heartbeating", func() bool {
		code, got := place(t, b.base, "exam-lost", 2)
		p = got
		return code == http.StatusOK
	})
	victim, survivor := a, b
	if p.NodeID == "b" {
		victim, survivor = b, a
	}
	proctor := testclient.Join(t, wsURL(p.URL), secret, "exam-lost", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, wsURL(p.URL), secret, "exam-lost", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media before the loss", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 30 })

	victim.cmd.Process.Kill() // SIGKILL
	victim.cmd.Wait()
	killed := time.Now()
	var q placement
	testclient.Eventually(t, 20*time.Second, "the room placed on the surviving node", func() bool {
		code, got := place(t, survivor.base, "exam-lost", 2)
		q = got
		return code == http.StatusOK && q.URL == survivor.base
	})
	proctor2 := testclient.Join(t, wsURL(q.URL), secret, "exam-lost", "proctor-1", room.RoleProctor)
	alice2 := testclient.Join(t, wsURL(q.URL), secret, "exam-lost", "alice", room.RoleStudent)
	testclient.Eventually(t, 20*time.Second-time.Since(killed), "media after rejoining", func() bool { return proctor2.PacketsFrom(alice2.Me.SID) > 30 })
	t.Logf("room moved and media back %v after the kill", time.Since(killed).Round(100*time.Millisecond))
}

// BenchmarkPlacementHTTP is the API tier's view: GET /v1/placement with
// an admin token through one node with Redis, 16 requests in flight,
// a new room every 4th request. It reports requests/s and p95 latency
// (docs/benchmarks.md, "Placement").
func BenchmarkPlacementHTTP(b *testing.B) {
	rs := testredis.Start(b, 0)
	srv := startServe(b, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a", "--max-participants-per-node", "100000000").base
	tok := adminToken(b)
	testclient.Eventually(b, 5*time.Second, "placement", func() bool {
		code, _ := place(b, srv, "warm", 1)
		return code == http.StatusOK
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var mu sync.Mutex
	var lat []time.Duration
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := n.Add(1)
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/placement?room=bench-%d&expected=1", srv, i/4), nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("HTTP %d", resp.StatusCode)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
	}
}

// TestClusterSpreadsStudents: the API tier places 30 rooms of 5 students
// at once through any of three nodes, before a heartbeat can show any of
// them; then the 150 students join where they were sent. No node holds
// more than 45% of them, and every join lands on its room's node (none
// is redirected).
func TestClusterSpreadsStudents(t *testing.T) {
	rs := testredis.Start(t, 0)
	var nodes []*served
	for _, id := range []string{"a", "b", "c"} {
		nodes = append(nodes, startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", id))
	}
	testclient.Eventually(t, 5*time.Second, "three nodes heartbeating", func() bool {
		resp, err := http.Get(nodes[0].base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		code, p := place(t, nodes[0].base, "probe", 0)
		return code == http.StatusOK && p.URL != ""
	})
	urls := make([]string, 30)
	var wg sync.WaitGroup
	for i := range urls {
		wg.Go(func() {
			code, p := place(t, nodes[i%3].base, fmt.Sprintf("spread-%d", i), 5)
			if code != http.StatusOK {
				t.Errorf("placing room %d: HTTP %d", i, code)
			}
			urls[i] = p.URL
		})
	}
	wg.Wait()
	var socks []*websocket.Conn
	defer func() {
		for _, ws := range socks {
			ws.CloseNow()
		}
	}()
	for i, u := range urls {
		for s := range 5 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ws, _, err := websocket.Dial(ctx, wsURL(u), nil)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			socks = append(socks, ws)
			b, _ := json.Marshal(map[string]any{"v": 1, "type": "join", "id": "j",
				"token": testclient.Mint(t, secret, fmt.Sprintf("spread-%d", i), fmt.Sprintf("s%d-%d", i, s), room.RoleStudent)})
			ws.Write(ctx, websocket.MessageText, b)
			_, msg, err := ws.Read(ctx)
			cancel()
			if err != nil || !strings.Contains(string(msg), `"joined"`) {
				t.Fatalf("student %d of room %d at %s: %s %v", s, i, u, msg, err)
			}
		}
	}
	total := 0
	for _, n := range nodes {
		resp, err := http.Get(n.base + "/capacity")
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			NodeID   string `json:"node_id"`
			Students int    `json:"students"`
		}
		json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		total += c.Students
		t.Logf("node %s: %d students", c.NodeID, c.Students)
		if float64(c.Students) > 0.45*150 {
			t.Errorf("node %s holds %d of 150 students (> 45%%)", c.NodeID, c.Students)
		}
	}
	if total != 150 {
		t.Errorf("%d students joined, want 150", total)
	}
}
