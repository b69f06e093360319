package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

// haproxySocket sends one command to HAProxy's stats socket and returns
// the answer (the socket closes after it in non-interactive mode).
func haproxySocket(t *testing.T, sock, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return ""
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// serversState parses `show servers state <backend>`: per server name,
// its fields by the header's column names.
func serversState(out string) map[string]map[string]string {
	states := map[string]map[string]string{}
	var header []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# ") {
			header = strings.Fields(strings.TrimPrefix(line, "# "))
			continue
		}
		f := strings.Fields(line)
		if header == nil || len(f) < len(header) {
			continue
		}
		row := map[string]string{}
		for i, h := range header {
			row[h] = f[i]
		}
		states[row["srv_name"]] = row
	}
	return states
}

// signalJoin joins roomName over WebSocket at url without media and
// keeps the socket open (reading, so nothing backs up) until the test
// ends; it returns the join's answer.
func signalJoin(t *testing.T, url, roomName, identity string) testclient.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	testclient.Send(t, ws, map[string]any{"v": 1, "type": "join", "id": "j1",
		"token": testclient.Mint(t, secret, roomName, identity, room.RoleStudent)})
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("join %s at %s: %v", roomName, url, err)
		}
		var m testclient.Msg
		json.Unmarshal(b, &m)
		if m.Type == "joined" || m.Type == "error" {
			go func() {
				for {
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			return m
		}
	}
}

// TestHAProxyThreeNodes runs the shipped haproxy.cfg (rewritten to
// loopback, each server's agent on its own port, a stats socket added)
// in front of three nodes on a real redis-server: the weights HAProxy
// reports on its stats socket follow the nodes' load (10 of 20 seats
// taken: 50), a drained node is in drain there (its admin state, from
// the agent; and back when undrained), and a SIGKILLed node is marked down while new joins
// through the balancer land on the other two.
func TestHAProxyThreeNodes(t *testing.T) {
	haproxy := tool(t, "haproxy")
	rs := testredis.Start(t, 0)
	var nodes [3]*node
	var agents [3]int
	var servers [3]string
	agentRe := regexp.MustCompile(`agent_addr=127\.0\.0\.1:(\d+)`)
	for i := range nodes {
		nodes[i] = startNode(t, "--redis-url", rs.URL(), "--node-id", fmt.Sprintf("n%d", i+1),
			"--agent-addr", "127.0.0.1:0", "--max-participants-per-node", "20")
		m := agentRe.FindStringSubmatch(nodes[i].stderr.String())
		if m == nil {
			t.Fatalf("no agent_addr in node %d's serving line", i+1)
		}
		agents[i], _ = strconv.Atoi(m[1])
		servers[i] = nodes[i].addr
	}
	ports := haproxyPorts{front: freePort(t), stats: freePort(t), agent: agents[0]}
	for i := range ports.nodes {
		ports.nodes[i] = freePort(t)
	}
	cfg := haproxyCopy(t, ports, servers)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	text := string(readFile(t, cfg))
	text = strings.Replace(text, "global\n", "global\n    stats socket "+sock+" mode 600 level admin\n", 1)
	for i := range servers {
		line := fmt.Sprintf("server invigil-%d %s check\n", i+1, servers[i])
		if !strings.Contains(text, line) {
			t.Fatalf("rewritten haproxy.cfg has no %q", line)
		}
		text = strings.ReplaceAll(text, line, fmt.Sprintf("server invigil-%d %s check agent-port %d\n", i+1, servers[i], agents[i]))
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, syscall.SIGTERM, haproxy, "-db", "-f", cfg)

	stat := func() string {
		if !p.alive() {
			t.Fatalf("haproxy exited:\n%s", p.out.String())
		}
		return haproxySocket(t, sock, "show stat")
	}
	waitFor(t, 20*time.Second, "three servers UP, agents OK, weights 100", func() bool {
		csv := stat()
		return serverColumn(csv, "invigil", "status") == "UP,UP,UP" &&
			serverColumn(csv, "invigil", "agent_status") == "L7OK,L7OK,L7OK" &&
			serverColumn(csv, "invigil", "weight") == "100,100,100"
	})

	// Load: 10 of node 1's 20 seats; its agent says "ready up 50%".
	for s := range 10 {
		if m := signalJoin(t, "ws://"+servers[0]+"/v1/rtc", "load-1", fmt.Sprintf("s%d", s)); m.Type != "joined" {
			t.Fatalf("join on node 1: %+v", m)
		}
	}
	waitFor(t, 15*time.Second, "node 1's weight at 50 on the stats socket", func() bool {
		return serverColumn(stat(), "invigil", "weight") == "50,100,100"
	})

	// Drain node 2: the agent says drain, HAProxy puts it in drain.
	admin, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: signaling.AllRooms, Identity: "ops", Role: room.RoleAdmin, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	drainReq := func(method string) {
		req, _ := http.NewRequest(method, nodes[1].base+"/v1/node/drain", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s /v1/node/drain: %d", method, resp.StatusCode)
		}
	}
	drainReq(http.MethodPost)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("show stat:\n%s\nshow servers state:\n%s", haproxySocket(t, sock, "show stat"), haproxySocket(t, sock, "show servers state invigil"))
		}
	})
	drained := func() bool {
		st := serversState(haproxySocket(t, sock, "show servers state invigil"))["invigil-2"]
		adm, err := strconv.Atoi(st["srv_admin_state"])
		// SRV_ADMF_FDRAIN (0x08) or SRV_ADMF_IDRAIN (0x10): the agent's drain.
		return err == nil && adm&0x18 != 0
	}
	// In drain by the agent, and out of the pool: "DRAIN" while its last
	// /readyz check passed, "DOWN" once the 503s have failed it.
	waitFor(t, 15*time.Second, "invigil-2 in drain on the stats socket", func() bool {
		st := strings.Split(serverColumn(stat(), "invigil", "status"), ",")[1]
		return drained() && (st == "DRAIN" || strings.HasPrefix(st, "DOWN"))
	})
	drainReq(http.MethodDelete)
	waitFor(t, 20*time.Second, "invigil-2 out of drain and UP at 100 once undrained", func() bool {
		csv := stat()
		return !drained() && serverColumn(csv, "invigil", "weight") == "50,100,100" &&
			serverColumn(csv, "invigil", "status") == "UP,UP,UP"
	})

	// SIGKILL node 3 by its PID: HAProxy marks it down, and new rooms
	// joined through the balancer land on nodes 1 and 2.
	nodes[2].kill(t)
	waitFor(t, 20*time.Second, "invigil-3 DOWN", func() bool {
		return strings.HasPrefix(strings.Split(serverColumn(stat(), "invigil", "status"), ",")[2], "DOWN")
	})
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	front := fmt.Sprintf("ws://127.0.0.1:%d/v1/rtc", ports.front)
	landed := map[string]int{}
	for k := range 8 {
		name := fmt.Sprintf("after-kill-%d", k)
		if m := signalJoin(t, front, name, "s0"); m.Type != "joined" {
			t.Fatalf("join %s through HAProxy after the kill: %+v", name, m)
		}
		owner, err := rdb.Get(context.Background(), "invigil:room:"+name).Result()
		if err != nil {
			t.Fatalf("%s's owner: %v", name, err)
		}
		landed[owner]++
	}
	if landed["n3"] > 0 || landed["n1"]+landed["n2"] != 8 {
		t.Errorf("joins through the balancer after node 3's kill landed on %v", landed)
	}
	t.Logf("after the kill: %v", landed)
}
