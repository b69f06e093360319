package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

const secret = "cmd-test-secret-0123456789abcdef0123"

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "invigil.yaml")
	yaml := "http-addr: 127.0.0.1:9001\nrtc-udp-port: 9002\nlog-level: debug\nallowed-origins: [a.example, b.example]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INVIGIL_RTC_UDP_PORT", "9102")
	t.Setenv("INVIGIL_API_SECRET", secret)
	t.Setenv("INVIGIL_LOG_LEVEL", "warn")
	var stderr bytes.Buffer
	c, err := parseServe([]string{"--config", file, "--log-level", "error"}, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if c.httpAddr != "127.0.0.1:9001" {
		t.Errorf("http-addr %q: the YAML value should beat the default", c.httpAddr)
	}
	if c.rtcUDPPort != 9102 {
		t.Errorf("rtc-udp-port %d: the environment should beat YAML", c.rtcUDPPort)
	}
	if c.logLevel != "error" {
		t.Errorf("log-level %q: the flag should beat the environment", c.logLevel)
	}
	if c.allowedOrigins != "a.example,b.example" {
		t.Errorf("allowed-origins %q: a YAML list should become a comma list", c.allowedOrigins)
	}
	if c.rtcTCPPort != 7881 || c.apiSecret != secret {
		t.Errorf("defaults/env not applied: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("http_addr: :1\n"), 0o600)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no secret", nil, "--api-secret"},
		{"short secret", []string{"--api-secret", "short"}, "at least 32 bytes"},
		{"unknown yaml key", []string{"--api-secret", secret, "--config", bad}, `unknown key "http_addr"`},
		{"missing config", []string{"--api-secret", secret, "--config", filepath.Join(dir, "none.yaml")}, "no such file"},
		{"bad node ip", []string{"--api-secret", secret, "--node-ip", "10.0.0"}, "not an IP"},
		{"bad log format", []string{"--api-secret", secret, "--log-format", "xml"}, "text or json"},
		{"bad public url", []string{"--api-secret", secret, "--public-url", "ftp://x"}, "http(s)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServe(tc.args, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDevDefaults(t *testing.T) {
	c, err := parseServe([]string{"--dev", "--http-addr", ":0"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.apiSecret != devSecret || c.httpAddr != "127.0.0.1:0" || c.nodeIP != "127.0.0.1" {
		t.Errorf("--dev config %+v", c)
	}
}

func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"token", "--api-secret", secret, "--room", "exam-1", "--identity", "alice", "--role", "proctor", "--ttl", "5m"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	g, err := signaling.VerifyToken([]byte(secret), lines[len(lines)-1])
	if err != nil || g.Identity != "alice" || g.Room != "exam-1" || g.Role != room.RoleProctor {
		t.Fatalf("minted token: %+v %v", g, err)
	}
	if d := time.Until(g.Expires); d > 5*time.Minute || d < 4*time.Minute {
		t.Errorf("ttl: expires in %s", d)
	}
	if code := run([]string{"token", "--api-secret", secret, "--room", "r", "--identity", "i", "--role", "janitor"}, &out, &errOut); code == 0 {
		t.Error("an unknown role was minted")
	}
	if code := run([]string{"token", "--room", "r", "--identity", "i"}, &out, &errOut); code == 0 {
		t.Error("a token was minted without a secret")
	}
}

// TestServeLifecycle runs serve in-process on loopback ports, checks its
// endpoints and --dev links, and that cancelling it (what SIGTERM does)
// returns cleanly.
func TestServeLifecycle(t *testing.T) {
	srv := startServe(t, "--dev", "--admin-addr", ":0", "--agent-addr", "127.0.0.1:0")
	base := srv.base
	admin := regexp.MustCompile(`admin_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.stderr.String())
	if admin == nil {
		t.Fatalf("no admin listener on loopback:\n%s", srv.stderr.String())
	}
	if resp, err := http.Get("http://" + admin[1] + "/debug/pprof/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof index: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp, err := http.Get(base + "/debug/pprof/"); err != nil || resp.StatusCode != 404 {
		t.Errorf("pprof must not be on the public listener: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	agent := regexp.MustCompile(`agent_addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(srv.stderr.String())
	if agent == nil {
		t.Fatal("no agent-check listener")
	}
	if c, err := net.Dial("tcp", agent[1]); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(c)
		c.Close()
		if string(b) != "ready up 100%\n" {
			t.Errorf("agent-check of an idle node: %q", b)
		}
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/capacity": 200, "/student": 200, "/proctor": 200, "/sdk/invigil.js": 200, "/nope": 404} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	links := regexp.MustCompile(`(?m)^(Proctor|Student \d): (http://\S+/(proctor|student)#token=(\S+))$`).FindAllStringSubmatch(srv.stdout.String(), -1)
	if len(links) != 3 {
		t.Fatalf("--dev printed %d links:\n%s", len(links), srv.stdout.String())
	}
	for _, l := range links {
		if !strings.HasPrefix(l[2], base+"/") {
			t.Errorf("link %s is not on %s", l[2], base)
		}
		if _, err := signaling.VerifyToken([]byte(devSecret), l[4]); err != nil {
			t.Errorf("%s link token: %v", l[1], err)
		}
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if !strings.Contains(srv.stderr.String(), "msg=stopped") {
		t.Errorf("no stopped line:\n%s", srv.stderr.String())
	}
}

// warnings are log's WARN and ERROR lines (text or JSON), the last 40.
func warnings(log string) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") ||
			strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
			out = append(out, line)
		}
	}
	return strings.Join(out[max(len(out)-40, 0):], "")
}

// served is a node run in-process by startServe.
type served struct {
	base           string // http://127.0.0.1:port
	stdout, stderr *logbuf.Buffer
	stop           func() error // cancels serve (what SIGTERM does) and waits
}

// startServe runs serve on loopback ports with extra flags and waits for
// its listening line. The test's cleanup stops it if the test did not.
func startServe(t testing.TB, extra ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{stdout: &logbuf.Buffer{}, stderr: &logbuf.Buffer{}}
	done := make(chan error, 1)
	args := append([]string{"--http-addr", "127.0.0.1:0", "--rtc-udp-port", "0", "--rtc-tcp-port", "0", "--node-ip", "127.0.0.1",
		"--data-dir", t.TempDir(), "--turn-udp-port", "0"}, extra...)
	go func() { done <- serve(ctx, args, s.stdout, s.stderr) }()
	var once sync.Once
	var result error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				result = errors.New("serve did not stop within 15 s")
			}
		})
		return result
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("the node's warnings and errors:\n%s", warnings(s.stderr.String()))
		}
	})
	addr := regexp.MustCompile(`http_addr"?[=:]"?(127\.0\.0\.1:\d+)`) // text or JSON logs
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := addr.FindStringSubmatch(s.stderr.String()); m != nil {
			s.base = "http://" + m[1]
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, s.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lookTool finds an external program a test drives. Missing, the test
// fails in CI (scripts/install-test-deps.sh installs it) and is skipped
// elsewhere.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed; scripts/install-test-deps.sh installs it", name)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

// roomEvents reads a room's whole audit trail from a node's events API,
// as the exam platform does (admin token).
func roomEvents(t *testing.T, base, roomName string) []room.Event {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/rooms/"+roomName+"/events?limit=10000", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Events []room.Event `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("events of %s: HTTP %d, %v", roomName, resp.StatusCode, err)
	}
	return body.Events
}
