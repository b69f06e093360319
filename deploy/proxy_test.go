package deploy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// haproxyPorts are the loopback ports a rewritten haproxy.cfg listens on
// (and asks the agent on).
type haproxyPorts struct {
	front int    // for bind :80
	nodes [3]int // for bind :8001-8003 and their dst_port rules
	stats int    // for bind :8404
	agent int    // for agent-port 7883
}

// haproxyCopy writes haproxy.cfg with its binds, per-node ports, agent
// port and server addresses (invigil-N:7880) rewritten, and returns its
// path. Every rewrite must find its target, so the test notices when the
// shipped file changes shape.
func haproxyCopy(t *testing.T, p haproxyPorts, servers [3]string) string {
	t.Helper()
	cfg := string(readFile(t, "haproxy.cfg"))
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(cfg, old) {
			t.Fatalf("haproxy.cfg has no %q any more: update haproxyCopy", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	replace("    bind :80\n", fmt.Sprintf("    bind 127.0.0.1:%d\n", p.front))
	replace("    bind :8404\n", fmt.Sprintf("    bind 127.0.0.1:%d\n", p.stats))
	replace("agent-port 7883", fmt.Sprintf("agent-port %d", p.agent))
	// A test process may not raise its descriptor limit to what 20,000
	// connections need.
	replace("    maxconn 20000\n", "    maxconn 1000\n")
	for i := range 3 {
		public := strconv.Itoa(8001 + i)
		replace("    bind :"+public+"\n", fmt.Sprintf("    bind 127.0.0.1:%d\n", p.nodes[i]))
		replace("dst_port "+public+" ", fmt.Sprintf("dst_port %d ", p.nodes[i]))
		replace(fmt.Sprintf(" invigil-%d:7880 ", i+1), " "+servers[i]+" ")
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// nginxCopy writes nginx.conf into dir with its pid, logs and temporary
// directories inside dir; when port > 0 it listens on 127.0.0.1:port, and
// when servers is given the three node addresses are replaced by them.
func nginxCopy(t *testing.T, dir string, port int, servers []string) string {
	t.Helper()
	cfg := string(readFile(t, "nginx.conf"))
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(cfg, old) {
			t.Fatalf("nginx.conf has no %q any more: update nginxCopy", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	replace("pid /run/nginx.pid;", "pid "+filepath.Join(dir, "nginx.pid")+";")
	replace("/var/log/nginx/error.log", filepath.Join(dir, "error.log"))
	replace("/var/log/nginx/access.log", filepath.Join(dir, "access.log"))
	var temp strings.Builder
	if err := os.MkdirAll(filepath.Join(dir, "temp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temp, "    %s_temp_path %s;\n", kind, filepath.Join(dir, "temp", kind))
	}
	replace("http {\n", "http {\n"+temp.String())
	if port > 0 {
		replace("listen 80 default_server;", fmt.Sprintf("listen 127.0.0.1:%d default_server;", port))
		replace("listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port))
	}
	for i, s := range servers {
		replace(fmt.Sprintf("10.0.0.1%d:7880", i+1), s)
	}
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHAProxyInFront runs the shipped haproxy.cfg (rewritten to loopback)
// in front of a real node: the /readyz check and the node's agent
// (--agent-addr) keep the servers UP at full weight, the per-node port
// reaches its node, a browser-like Origin passes, and a proctor and a
// student who signal through it get media.
func TestHAProxyInFront(t *testing.T) {
	haproxy := tool(t, "haproxy")
	n := startNode(t, "--agent-addr", "127.0.0.1:0")
	agent := regexp.MustCompile(`agent_addr=127\.0\.0\.1:(\d+)`).FindStringSubmatch(n.stderr.String())
	if agent == nil {
		t.Fatalf("no agent_addr in the node's serving line:\n%s", n.stderr.String())
	}
	agentPort, _ := strconv.Atoi(agent[1])
	ports := haproxyPorts{front: freePort(t), stats: freePort(t), agent: agentPort}
	for i := range ports.nodes {
		ports.nodes[i] = freePort(t)
	}
	cfg := haproxyCopy(t, ports, [3]string{n.addr, n.addr, n.addr})
	p := startProcess(t, syscall.SIGTERM, haproxy, "-db", "-f", cfg)
	entry := fmt.Sprintf("127.0.0.1:%d", ports.front)

	waitFor(t, 15*time.Second, "/readyz through HAProxy", func() bool {
		if !p.alive() {
			t.Fatalf("haproxy exited:\n%s", p.out.String())
		}
		code, _ := get(t, "http://"+entry+"/readyz", "")
		return code == http.StatusOK
	})
	// Every server passes its /readyz check and its agent check (the node
	// says "ready up 100%" when idle, so the weights stay 100).
	stats := fmt.Sprintf("http://127.0.0.1:%d/stats;csv", ports.stats)
	waitFor(t, 20*time.Second, "every server UP with /readyz and the agent checked OK", func() bool {
		_, csv := get(t, stats, "")
		return serverColumn(csv, "invigil", "status") == "UP,UP,UP" &&
			serverColumn(csv, "invigil", "check_status") == "L7OK,L7OK,L7OK" &&
			serverColumn(csv, "invigil", "agent_status") == "L7OK,L7OK,L7OK" &&
			serverColumn(csv, "invigil", "weight") == "100,100,100" &&
			serverColumn(csv, "node_invigil_1", "check_status") == "L7OK"
	})
	for i, port := range ports.nodes {
		if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), ""); code != http.StatusOK {
			t.Errorf("per-node port %d (invigil-%d): /healthz %d %s", port, i+1, code, body)
		}
	}
	if code, body := get(t, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports.stats), ""); code != http.StatusOK || !strings.Contains(body, "haproxy_") {
		t.Errorf("HAProxy's own /metrics: %d", code)
	}
	joinThrough(t, entry)
}

// serverColumn returns the comma-joined values of one column of HAProxy's
// CSV stats for a backend's servers.
func serverColumn(csv, backend, column string) string {
	lines := strings.Split(csv, "\n")
	header := strings.Split(strings.TrimPrefix(lines[0], "# "), ",")
	col := slices.Index(header, column)
	if col < 0 {
		return ""
	}
	var out []string
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) > col && f[0] == backend && f[1] != "BACKEND" && f[1] != "FRONTEND" {
			out = append(out, f[col])
		}
	}
	return strings.Join(out, ",")
}

// TestNginxInFront runs the shipped nginx.conf (rewritten to loopback) in
// front of a real node: pages and health pass, /metrics stays private, a
// per-node host name reaches its node, a browser-like Origin passes (Host
// is forwarded unchanged), and signaling through it brings media.
func TestNginxInFront(t *testing.T) {
	nginx := tool(t, "nginx")
	n := startNode(t)
	dir := t.TempDir()
	port := freePort(t)
	cfg := nginxCopy(t, dir, port, []string{n.addr, n.addr, n.addr})
	errLog := filepath.Join(dir, "error.log")
	if out, err := run(t, time.Minute, nginx, "-t", "-p", dir, "-e", errLog, "-c", cfg); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	p := startProcess(t, syscall.SIGTERM, nginx, "-p", dir, "-e", errLog, "-c", cfg, "-g", "daemon off;")
	entry := fmt.Sprintf("127.0.0.1:%d", port)

	waitFor(t, 15*time.Second, "/readyz through nginx", func() bool {
		if !p.alive() {
			log, _ := os.ReadFile(errLog)
			t.Fatalf("nginx exited:\n%s\n%s", p.out.String(), log)
		}
		code, _ := get(t, "http://"+entry+"/readyz", "")
		return code == http.StatusOK
	})
	if code, _ := get(t, "http://"+entry+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("/metrics through nginx: %d, want 404 (private)", code)
	}
	if code, body := get(t, "http://"+entry+"/healthz", "invigil-2.exam.example.com"); code != http.StatusOK {
		t.Errorf("per-node host invigil-2: /healthz %d %s", code, body)
	}
	joinThrough(t, entry)
}

// joinThrough signals through a proxy at entry (host:port): the node
// accepts a WebSocket whose Origin is the proxy's own address and refuses
// a foreign one, and a proctor receives a student's media (which flows
// directly between the clients and the node).
func joinThrough(t *testing.T, entry string) {
	t.Helper()
	ws := "ws://" + entry + "/v1/rtc"
	if code := dialWithOrigin(t, ws, "http://"+entry, "origin-check"); code != http.StatusSwitchingProtocols {
		t.Errorf("WebSocket with the proxy's own Origin: HTTP %d, want 101 and joined (is Host forwarded unchanged?)", code)
	}
	if code := dialWithOrigin(t, ws, "http://evil.example", "origin-check"); code != http.StatusForbidden {
		t.Errorf("WebSocket with a foreign Origin: HTTP %d, want 403", code)
	}
	proctor := testclient.Join(t, ws, secret, "exam-proxy", "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, ws, secret, "exam-proxy", "alice", room.RoleStudent)
	waitFor(t, 20*time.Second, "alice's media at the proctor", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 20
	})
}

// dialWithOrigin opens the signaling WebSocket with an Origin header, as a
// browser does, and returns the HTTP status of the handshake; on success
// it also joins as a proctor and waits for joined.
func dialWithOrigin(t *testing.T, url, origin, roomName string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: client,
		HTTPHeader: http.Header{"Origin": {origin}},
	})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return resp.StatusCode
	}
	defer c.CloseNow()
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "id": "j1",
		"token": testclient.Mint(t, secret, roomName, "proctor-origin", room.RoleProctor)})
	for range 8 {
		m, err := testclient.Recv(c, 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for joined: %v", err)
		}
		switch m.Type {
		case "joined":
			c.Close(websocket.StatusNormalClosure, "")
			return resp.StatusCode
		case "error":
			t.Fatalf("join refused: %s %s", m.Code, m.Message)
		}
	}
	t.Fatal("no joined reply")
	return 0
}
