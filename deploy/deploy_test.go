// Package deploy_test checks the deployment artifacts in deploy/ with the
// tools that consume them (promtool, haproxy, nginx, systemd-analyze,
// prometheus) and against a real `invigil serve` built from this checkout:
// the metrics the dashboard and the alerts name are the ones it exports,
// the settings the configs give are flags it knows, and a node behind the
// shipped HAProxy and nginx configs is reachable and carries media.
//
// A missing tool fails the test when CI=true (scripts/install-test-deps.sh
// installs them) and skips it elsewhere. systemd-analyze and kubectl are
// not installed by that script, so their checks only ever skip.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/invigil/invigil/internal/logbuf"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
)

// secret is the API secret of the nodes the tests start (40 bytes).
const secret = "deploy-test-secret-0123456789abcdef01234"

// binDir holds the invigil binary built once for the whole package.
var binDir string

// TestMain builds nothing itself (tests that need the binary build it on
// first use), removes the build directory afterwards, and fails the package
// if a goroutine outlives the tests.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "invigil-deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// tool returns the path of an external program a test drives. When it is
// missing the test fails in CI (CI=true) and is skipped elsewhere.
func tool(t *testing.T, name string) string {
	t.Helper()
	if path, ok := lookTool(name); ok {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed; scripts/install-test-deps.sh installs it (make test runs that script)", name)
	}
	t.Skipf("%s is not installed (scripts/install-test-deps.sh installs it)", name)
	return ""
}

// lookTool finds a program in PATH or in the sbin directories a non-root
// PATH may lack (haproxy and nginx live in /usr/sbin).
func lookTool(name string) (string, bool) {
	if path, err := exec.LookPath(name); err == nil {
		return path, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		path := filepath.Join(dir, name)
		if st, err := os.Stat(path); err == nil && st.Mode()&0o111 != 0 {
			return path, true
		}
	}
	return "", false
}

// run runs a command to completion with a hard timeout and returns its
// combined output and error.
func run(t *testing.T, timeout time.Duration, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	return cmd.CombinedOutput()
}

// readFile reads a file of deploy/ (paths relative to this directory).
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// moduleRoot is the repository root, one level up from deploy/.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var build struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// invigilBinary builds ./cmd/invigil once per package run, the way
// deploy/Dockerfile does (CGO_ENABLED=0, -trimpath), and returns its path.
func invigilBinary(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)
	build.once.Do(func() {
		build.path = filepath.Join(binDir, "invigil")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", build.path, "./cmd/invigil")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("go build ./cmd/invigil: %v\n%s", build.err, build.out)
	}
	return build.path
}

// node is an `invigil serve` process on loopback, started by a test.
type node struct {
	base   string // http://127.0.0.1:PORT
	addr   string // 127.0.0.1:PORT
	cmd    *exec.Cmd
	stderr *logbuf.Buffer
	exited chan error // the process's exit, once (kill takes it)
	killed bool       // SIGKILLed by the test: its cleanup expects nothing
}

// kill SIGKILLs the node by its PID and waits for it to be gone.
func (n *node) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL node %d: %v", n.cmd.Process.Pid, err)
	}
	<-n.exited
	n.killed = true
}

// startNode starts `invigil serve` on loopback with ephemeral ports, waits
// for its "invigil serving" line, and registers a cleanup that stops it
// with SIGTERM by PID and expects a clean exit.
func startNode(t *testing.T, extra ...string) *node {
	t.Helper()
	bin := invigilBinary(t)
	args := append([]string{"serve",
		"--api-secret", secret,
		"--http-addr", "127.0.0.1:0",
		"--rtc-udp-port", "0",
		"--rtc-tcp-port", "0",
		// TURN's port has no "any free port" value: off, so parallel test
		// packages never race for 3478.
		"--turn-udp-port", "0",
		"--node-ip", "127.0.0.1",
		"--data-dir", t.TempDir(),
	}, extra...)
	n := &node{stderr: &logbuf.Buffer{}}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Env = cleanEnv()
	n.cmd.Stdout = n.stderr
	n.cmd.Stderr = n.stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	n.exited = exited
	go func() { exited <- n.cmd.Wait() }()
	t.Cleanup(func() {
		if n.killed {
			return
		}
		// SIGTERM by PID: the node drains and exits 0.
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("SIGTERM node %d: %v", n.cmd.Process.Pid, err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("node exited with %v after SIGTERM\n%s", err, n.stderr.String())
			}
		case <-time.After(20 * time.Second):
			n.cmd.Process.Kill()
			<-exited
			t.Errorf("node did not stop within 20 s of SIGTERM\n%s", n.stderr.String())
		}
	})
	serving := regexp.MustCompile(`msg="invigil serving".*http_addr=(127\.0\.0\.1:\d+)`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if m := serving.FindStringSubmatch(n.stderr.String()); m != nil {
			n.addr = m[1]
			n.base = "http://" + m[1]
			return n
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("invigil serve exited before serving: %v\n%s", err, n.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("invigil serve did not log \"invigil serving\" within 15 s\n%s", n.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cleanEnv is the test's environment without INVIGIL_* variables, so a
// developer's settings never reach the nodes the tests start.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "INVIGIL_") {
			env = append(env, kv)
		}
	}
	return env
}

// httpClient makes one connection per request, so no idle keep-alive
// goroutine outlives a test (goleak).
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// get fetches a URL and returns the status and body.
func get(t *testing.T, url string, host string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for programs that cannot be given port 0 and report back.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// process is an external daemon a test started; stop ends it by PID.
type process struct {
	cmd    *exec.Cmd
	out    *logbuf.Buffer
	exited chan error
}

// startProcess starts a daemon in the foreground and registers a cleanup
// that sends it sig by PID (then SIGKILL after 10 s).
func startProcess(t *testing.T, sig syscall.Signal, name string, args ...string) *process {
	t.Helper()
	p := &process{out: &logbuf.Buffer{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(sig)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// alive reports whether the process is still running.
func (p *process) alive() bool {
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// TestAlertRules: the rules load, and each alert fires on the series it is
// about, after its "for" time, and not on its neighbours (alerts_test.yml).
func TestAlertRules(t *testing.T) {
	promtool := tool(t, "promtool")
	if out, err := run(t, time.Minute, promtool, "check", "rules", "alerts.yml"); err != nil {
		t.Fatalf("promtool check rules alerts.yml: %v\n%s", err, out)
	}
	if out, err := run(t, time.Minute, promtool, "test", "rules", "alerts_test.yml"); err != nil {
		t.Fatalf("promtool test rules alerts_test.yml: %v\n%s", err, out)
	}
}

// TestPrometheusConfig: the compose Prometheus config parses and finds its
// rule file.
func TestPrometheusConfig(t *testing.T) {
	promtool := tool(t, "promtool")
	if out, err := run(t, time.Minute, promtool, "check", "config", "prometheus.yml"); err != nil {
		t.Fatalf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
}

// TestHAProxyConfig: the shipped file is valid as it is (the compose names
// need not resolve: init-addr none), and with the servers and ports
// rewritten to loopback it is valid without a single warning.
func TestHAProxyConfig(t *testing.T) {
	haproxy := tool(t, "haproxy")
	if out, err := run(t, time.Minute, haproxy, "-c", "-f", "haproxy.cfg"); err != nil {
		t.Fatalf("haproxy -c -f haproxy.cfg: %v\n%s", err, out)
	}
	cfg := haproxyCopy(t, haproxyPorts{front: 18080, nodes: [3]int{18081, 18082, 18083}, stats: 18404, agent: 17883},
		[3]string{"127.0.0.1:17880", "127.0.0.1:17890", "127.0.0.1:17900"})
	if out, err := run(t, time.Minute, haproxy, "-dW", "-c", "-f", cfg); err != nil {
		t.Fatalf("haproxy -dW -c (rewritten to loopback): %v\n%s", err, out)
	}
}

// TestNginxConfig: nginx -t on a copy whose pid and log paths point into
// a temporary prefix.
func TestNginxConfig(t *testing.T) {
	nginx := tool(t, "nginx")
	dir := t.TempDir()
	cfg := nginxCopy(t, dir, 0, nil)
	if out, err := run(t, time.Minute, nginx, "-t", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", cfg); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestSystemdUnit: systemd-analyze verify accepts the unit (its ExecStart
// pointed at a real binary, which verify requires), and `systemd-analyze
// security` rates its exposure OK or better.
func TestSystemdUnit(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	unit := string(readFile(t, "systemd/invigil.service"))
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/invigil serve\n") {
		t.Fatal("ExecStart is not /usr/local/bin/invigil serve")
	}
	bin := invigilBinary(t)
	path := filepath.Join(t.TempDir(), "invigil.service")
	if err := os.WriteFile(path, []byte(strings.Replace(unit, "ExecStart=/usr/local/bin/invigil", "ExecStart="+bin, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, time.Minute, analyze, "verify", path)
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = run(t, time.Minute, analyze, "security", "--offline=yes", path)
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	level := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindSubmatch(out)
	if level == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if string(level[2]) != "OK" {
		t.Errorf("exposure %s %s, want OK (below 2.0)", level[1], level[2])
	}
}

// TestStaticBinary: the binary built as the Dockerfile builds it has no
// ELF interpreter, so it runs on distroless/static (no libc).
func TestStaticBinary(t *testing.T) {
	f, err := elf.Open(invigilBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("CGO_ENABLED=0 build has an ELF interpreter: it needs libc and would not run on distroless/static")
		}
	}
}

// TestMetricNamesExported: every metric the alert rules and the dashboard
// name is exported by a running node, as a # HELP or # TYPE line. The
// trail's (invigil_trail_*) exist in cluster mode only: those are looked
// for on a second node, on a real redis-server.
func TestMetricNamesExported(t *testing.T) {
	used := map[string][]string{} // name -> where
	for _, e := range alertExprs(t) {
		for _, name := range metricNames(e.expr) {
			used[name] = append(used[name], "alerts.yml "+e.where)
		}
	}
	for _, e := range dashboardExprs(t) {
		for _, name := range metricNames(e.expr) {
			used[name] = append(used[name], "dashboard.json "+e.where)
		}
	}
	if len(used) < 20 {
		t.Fatalf("only %d metric names found in alerts.yml and dashboard.json: the extraction is broken", len(used))
	}

	n := startNode(t)
	code, body := get(t, n.base+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", code, body)
	}
	families := exportedFamilies(body)
	r := testredis.Start(t, 0)
	cn := startNode(t, "--redis-url", r.URL())
	code, body = get(t, cn.base+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics (cluster mode): %d %s", code, body)
	}
	for name, typ := range exportedFamilies(body) {
		if strings.HasPrefix(name, "invigil_trail_") {
			families[name] = typ
		}
	}
	for name, where := range used {
		if _, ok := families[name]; ok {
			continue
		}
		if _, ok := histogramBase(name, families); ok {
			continue
		}
		t.Errorf("%s is not exported by invigil serve (no # HELP or # TYPE line); used in %s", name, strings.Join(dedup(where), ", "))
	}
}

// metricNamePattern finds Invigil's, the Go collector's and the process
// collector's metric names in a PromQL expression.
var metricNamePattern = regexp.MustCompile(`\b(?:invigil|go|process)_[a-z0-9_]+\b`)

func metricNames(expr string) []string {
	return metricNamePattern.FindAllString(expr, -1)
}

// exportedFamilies maps each family named by a # HELP or # TYPE line of an
// exposition to its type ("" when only HELP names it).
func exportedFamilies(exposition string) map[string]string {
	fams := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "#" {
			continue
		}
		switch f[1] {
		case "HELP":
			if _, ok := fams[f[2]]; !ok {
				fams[f[2]] = ""
			}
		case "TYPE":
			if len(f) >= 4 {
				fams[f[2]] = f[3]
			}
		}
	}
	return fams
}

// histogramBase strips a _bucket, _sum or _count suffix when what remains
// is an exported histogram or summary.
func histogramBase(name string, fams map[string]string) (string, bool) {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if typ := fams[base]; typ == "histogram" || (typ == "summary" && suffix != "_bucket") {
			return base, true
		}
	}
	return "", false
}

func dedup(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testclient.Eventually(t, timeout, what, cond)
}
