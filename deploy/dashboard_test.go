package deploy_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// expr is a PromQL expression of the alerts or the dashboard, with where
// it was found.
type expr struct {
	where string
	expr  string
}

// alertRule is one rule of alerts.yml.
type alertRule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	var file struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, "alerts.yml"), &file); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var rules []alertRule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	if len(rules) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return rules
}

func alertExprs(t *testing.T) []expr {
	t.Helper()
	var out []expr
	for _, r := range alertRules(t) {
		out = append(out, expr{where: r.Alert, expr: r.Expr})
	}
	return out
}

// dashboard is the part of dashboard.json the tests read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, "grafana/dashboard.json"), &d); err != nil {
		t.Fatalf("grafana/dashboard.json: %v", err)
	}
	return d
}

// allPanels flattens rows' nested panels.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExprs returns every query of the dashboard: panel targets and
// the template variables' label_values(...) queries (as their selector).
func dashboardExprs(t *testing.T) []expr {
	t.Helper()
	d := loadDashboard(t)
	var out []expr
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out = append(out, expr{where: fmt.Sprintf("panel %d %q %s", p.ID, p.Title, tg.RefID), expr: tg.Expr})
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		if sm := labelValues.FindStringSubmatch(q); sm != nil {
			out = append(out, expr{where: "variable " + v.Name, expr: sm[1]})
		}
	}
	return out
}

// promQL replaces the dashboard's Grafana variables with values Prometheus
// accepts.
func promQL(e string) string {
	return strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(e)
}

// TestDashboardShape: a Grafana dashboard that imports cleanly (schema,
// unique ids, a 24-column grid without overlaps, every panel on the
// datasource variable) and shows every part of the brief.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" || len(d.UID) > 40 {
		t.Errorf("title %q, uid %q: both needed, uid at most 40 characters", d.Title, d.UID)
	}
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d, want 36-41 (Grafana 10-12)", d.SchemaVersion)
	}
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Type+":"+v.Name)
	}
	for _, want := range []string{"datasource:datasource", "query:instance"} {
		if !slices.Contains(vars, want) {
			t.Errorf("template variable %s missing (have %v)", want, vars)
		}
	}

	ids := map[int]string{}
	type rect struct{ x, y, w, h int }
	var placed []rect
	var names []string
	for _, p := range allPanels(d.Panels) {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d not unique (also %q) or zero", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		r := rect{g.X, g.Y, g.W, g.H}
		for _, q := range placed {
			if r.x < q.x+q.w && q.x < r.x+r.w && r.y < q.y+q.h && q.y < r.y+r.h {
				t.Errorf("panel %q at %+v overlaps another panel", p.Title, g)
			}
		}
		placed = append(placed, r)
		if p.Type == "row" {
			continue
		}
		if !slices.Contains([]string{"timeseries", "stat", "table"}, p.Type) {
			t.Errorf("panel %q: type %q", p.Title, p.Type)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource is not the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Expr == "" || tg.RefID == "" {
				t.Errorf("panel %q: target without expr or refId", p.Title)
			}
			names = append(names, metricNames(tg.Expr)...)
		}
	}
	// What the dashboard must show (issue 6): each as a metric it queries.
	for _, want := range []string{
		"invigil_rooms", "invigil_participants", "invigil_tracks",
		"invigil_rtp_packets_total", "invigil_rtp_bytes_total", "invigil_rtp_packets_lost_total",
		"invigil_nacks_total", "invigil_retransmits_total", "invigil_plis_total", "invigil_layer_switches_total",
		"invigil_ice_connections_total", "invigil_join_duration_seconds_bucket",
		"invigil_rtt_seconds_bucket", "invigil_jitter_seconds_bucket",
		"invigil_turn_allocations", "invigil_turn_relayed_bytes_total",
		"invigil_signaling_messages_total", "invigil_redis_errors_total",
		"invigil_build_info", "invigil_websocket_connections",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines",
	} {
		if !slices.Contains(names, want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

// TestDashboardPromQL: every dashboard query is valid PromQL (promtool
// parses them as recording rules).
func TestDashboardPromQL(t *testing.T) {
	promtool := tool(t, "promtool")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		q, _ := json.Marshal(promQL(e.expr)) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, time.Minute, promtool, "check", "rules", path); err != nil {
		t.Fatalf("dashboard queries are not valid PromQL: %v\n%s", err, out)
	}
}

// TestPrometheusScrapesNode runs Prometheus with the shipped prometheus.yml
// (targets rewritten to one real node, intervals to 1 s) and alerts.yml:
// every rule evaluates without error, and every dashboard query returns at
// least one series, so no selector or label in the dashboard is wrong.
func TestPrometheusScrapesNode(t *testing.T) {
	prometheus := tool(t, "prometheus")
	n := startNode(t)
	dir := t.TempDir()
	port := freePort(t)
	cfg := string(readFile(t, "prometheus.yml"))
	for old, new := range map[string]string{
		"scrape_interval: 15s":     "scrape_interval: 1s",
		"evaluation_interval: 15s": "evaluation_interval: 1s",
		"          - invigil-1:7880\n          - invigil-2:7880\n          - invigil-3:7880\n": "          - " + n.addr + "\n",
		"haproxy:8404":   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"localhost:9090": fmt.Sprintf("127.0.0.1:%d", port),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("prometheus.yml has no %q any more: update this test", old)
		}
		cfg = strings.ReplaceAll(cfg, old, new)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), readFile(t, "alerts.yml"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, syscall.SIGTERM, prometheus,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1/", port)

	query := func(q string) (status string, series int, errMsg string) {
		code, body := get(t, api+"query?query="+url.QueryEscape(q), "")
		var r struct {
			Status string `json:"status"`
			Error  string `json:"error"`
			Data   struct {
				ResultType string          `json:"resultType"`
				Result     json.RawMessage `json:"result"`
			} `json:"data"`
		}
		if code == 0 || json.Unmarshal([]byte(body), &r) != nil {
			return "unreachable", 0, body
		}
		if r.Data.ResultType == "vector" || r.Data.ResultType == "matrix" {
			var list []json.RawMessage
			json.Unmarshal(r.Data.Result, &list)
			series = len(list)
		} else if r.Status == "success" {
			series = 1 // scalar or string
		}
		return r.Status, series, r.Error
	}
	// Enough scrapes for rate() and increase() to have two samples.
	waitFor(t, 30*time.Second, "4 scrapes of the node", func() bool {
		if !p.alive() {
			t.Fatalf("prometheus exited:\n%s", p.out.String())
		}
		st, n, _ := query(`count_over_time(up{job="invigil"}[1m]) >= 4 and up{job="invigil"} == 1`)
		return st == "success" && n == 1
	})

	for _, e := range dashboardExprs(t) {
		st, n, msg := query(promQL(e.expr))
		if st != "success" {
			t.Errorf("%s: %s %s\n  %s", e.where, st, msg, e.expr)
		} else if n == 0 {
			t.Errorf("%s: no series from a live node\n  %s", e.where, e.expr)
		}
	}
	for _, e := range alertExprs(t) {
		if st, _, msg := query(e.expr); st != "success" {
			t.Errorf("alert %s: %s %s", e.where, st, msg)
		}
	}

	// Prometheus loaded alerts.yml and evaluates every rule cleanly.
	want := len(alertRules(t))
	waitFor(t, 15*time.Second, "every alert rule evaluated", func() bool {
		_, body := get(t, api+"rules", "")
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string `json:"name"`
						Health         string `json:"health"`
						LastError      string `json:"lastError"`
						LastEvaluation string `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if json.Unmarshal([]byte(body), &r) != nil {
			return false
		}
		ok := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				if rule.Health == "err" {
					t.Fatalf("rule %s: %s", rule.Name, rule.LastError)
				}
				if rule.Health == "ok" {
					ok++
				}
			}
		}
		return ok == want
	})
}

// TestRunbookLinks: every alert has a summary, a description and a
// runbook_url whose anchor is a section of docs/operations.md named after
// the alert.
func TestRunbookLinks(t *testing.T) {
	const prefix = "https://github.com/invigil/invigil/blob/main/docs/operations.md#"
	anchors := markdownAnchors(t, filepath.Join(moduleRoot(t), "docs", "operations.md"))
	for _, r := range alertRules(t) {
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("%s: summary and description annotations are required", r.Alert)
		}
		if r.Labels["severity"] == "" {
			t.Errorf("%s: no severity label", r.Alert)
		}
		link := r.Annotations["runbook_url"]
		anchor, ok := strings.CutPrefix(link, prefix)
		if !ok {
			t.Errorf("%s: runbook_url %q does not point into docs/operations.md", r.Alert, link)
			continue
		}
		if anchor != strings.ToLower(r.Alert) {
			t.Errorf("%s: runbook anchor #%s, want #%s", r.Alert, anchor, strings.ToLower(r.Alert))
		}
		if !anchors[anchor] {
			t.Errorf("%s: docs/operations.md has no heading with anchor #%s", r.Alert, anchor)
		}
	}
	// The page's own links between its sections resolve too.
	doc := readFile(t, filepath.Join(moduleRoot(t), "docs", "operations.md"))
	for _, m := range regexp.MustCompile(`\]\(#([^)]+)\)`).FindAllSubmatch(doc, -1) {
		if !anchors[string(m[1])] {
			t.Errorf("docs/operations.md links to #%s, which is no heading of it", m[1])
		}
	}
}

// markdownAnchors returns the GitHub anchors of a Markdown file's headings:
// lower case, punctuation other than - and _ dropped, spaces as dashes.
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v", err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		anchors[slug] = true
	}
	return anchors
}
