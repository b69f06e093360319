package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// pendingFlags are settings of the design that the configs already give
// (as INVIGIL_* variables, which a release without the flag ignores) but
// that `invigil serve` does not have yet. docs/operations.md lists them.
var pendingFlags = map[string]bool{}

// serveFlags returns the flag names `invigil serve -h` lists.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := run(t, time.Minute, invigilBinary(t), "serve", "-h")
	if err != nil {
		t.Fatalf("invigil serve -h: %v\n%s", err, out)
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllSubmatch(out, -1) {
		flags[string(m[1])] = true
	}
	if !flags["http-addr"] || !flags["api-secret"] {
		t.Fatalf("could not read the flags from `invigil serve -h`:\n%s", out)
	}
	return flags
}

// flagOf is the flag an INVIGIL_* variable sets.
func flagOf(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "INVIGIL_")), "_", "-")
}

// TestSettingsAreFlags: every INVIGIL_* variable the deploy files set is a
// flag of `invigil serve`, or one of the pending flags. The server ignores
// variables it does not know, so a misspelt one would silently leave a
// default in place; this test is where that is caught.
func TestSettingsAreFlags(t *testing.T) {
	flags := serveFlags(t)
	assignment := regexp.MustCompile(`(?m)^\s*#?\s*(?:Environment=|ENV\s+)?"?(INVIGIL_[A-Z0-9_]+)(?:=|:)`)
	files := []string{"docker-compose.yml", ".env.example", "systemd/invigil.service", "systemd/invigil.env.example", "Dockerfile"}
	k8s, _ := filepath.Glob("kubernetes/*.yaml")
	files = append(files, k8s...)
	seen := map[string]bool{}
	for _, f := range files {
		for _, m := range assignment.FindAllSubmatch(readFile(t, f), -1) {
			name := string(m[1])
			seen[name] = true
			flag := flagOf(name)
			if !flags[flag] && !pendingFlags[flag] {
				t.Errorf("%s sets %s, but `invigil serve` has no --%s (misspelt? the server ignores unknown variables)", f, name, flag)
			}
		}
	}
	// The Kubernetes env entries ("- name: INVIGIL_X") are not assignments
	// of the form above.
	for _, f := range k8s {
		for _, m := range regexp.MustCompile(`name: (INVIGIL_[A-Z0-9_]+)`).FindAllSubmatch(readFile(t, f), -1) {
			name := string(m[1])
			seen[name] = true
			if flag := flagOf(name); !flags[flag] && !pendingFlags[flag] {
				t.Errorf("%s sets %s, but `invigil serve` has no --%s", f, name, flag)
			}
		}
	}
	if len(seen) < 10 {
		t.Fatalf("only %d INVIGIL_* settings found: the extraction is broken", len(seen))
	}
	for flag := range pendingFlags {
		if flags[flag] {
			t.Logf("--%s is implemented now: drop it from pendingFlags and from docs/operations.md's list of pending settings", flag)
		}
	}
}

// TestPlaceholderSecretsRefused: the API-secret placeholders of the
// example files are ones a node refuses to start with, so a copied example
// can never run in production with a published secret.
func TestPlaceholderSecretsRefused(t *testing.T) {
	placeholders := map[string]string{}
	pattern := regexp.MustCompile(`(?m)^\s*(?:INVIGIL_API_SECRET=|api-secret: )(\S+)$`)
	for _, f := range []string{".env.example", "systemd/invigil.env.example", "kubernetes/secret.yaml"} {
		m := pattern.FindSubmatch(readFile(t, f))
		if m == nil {
			t.Errorf("%s: no API secret placeholder found", f)
			continue
		}
		placeholders[string(m[1])] = f
	}
	bin := invigilBinary(t)
	for value, f := range placeholders {
		out, err := run(t, time.Minute, bin, "serve", "--api-secret", value, "--http-addr", "127.0.0.1:0",
			"--rtc-udp-port", "0", "--rtc-tcp-port", "0", "--turn-udp-port", "0", "--node-ip", "127.0.0.1",
			"--data-dir", t.TempDir())
		if err == nil || !strings.Contains(string(out), "at least 32 bytes") {
			t.Errorf("%s: invigil serve with the placeholder secret %q: %v, want a refusal for its length\n%s", f, value, err, out)
		}
	}
}

// composeFile is the part of docker-compose.yml the test reads.
type composeFile struct {
	Services map[string]struct {
		Image           string         `yaml:"image"`
		Environment     map[string]any `yaml:"environment"`
		Ports           []string       `yaml:"ports"`
		Volumes         []string       `yaml:"volumes"`
		StopGracePeriod string         `yaml:"stop_grace_period"`
		ReadOnly        bool           `yaml:"read_only"`
		CapDrop         []string       `yaml:"cap_drop"`
	} `yaml:"services"`
}

// TestComposeNodes: three nodes, each advertising its own media and TURN
// ports, published on the host under the same numbers it listens on (its
// ICE candidates carry them), no host port twice; the files compose
// mounts exist; HAProxy and Prometheus name the same three nodes.
func TestComposeNodes(t *testing.T) {
	raw := readFile(t, "docker-compose.yml")
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, svc := range []string{"redis", "haproxy", "prometheus", "grafana"} {
		if _, ok := c.Services[svc]; !ok {
			t.Errorf("service %s missing", svc)
		}
	}
	haproxyCfg := string(readFile(t, "haproxy.cfg"))
	promCfg := string(readFile(t, "prometheus.yml"))
	hostPorts := map[string]string{} // "7882/udp" -> service
	for name, s := range c.Services {
		for _, p := range s.Ports {
			hp := hostPort(p)
			if other, dup := hostPorts[hp]; dup {
				t.Errorf("host port %s published by both %s and %s", hp, other, name)
			}
			hostPorts[hp] = name
		}
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "./") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s mounts %s, which does not exist in deploy/", name, src)
				}
			}
		}
	}
	haproxyPortsPublished := c.Services["haproxy"].Ports
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("invigil-%d", i)
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		env := func(k string) string {
			v, ok := s.Environment[k]
			if !ok {
				t.Errorf("%s: %s not set", name, k)
				return ""
			}
			return fmt.Sprint(v)
		}
		if id := env("INVIGIL_NODE_ID"); id != name {
			t.Errorf("%s: INVIGIL_NODE_ID %q", name, id)
		}
		for _, want := range []string{
			env("INVIGIL_RTC_UDP_PORT") + "/udp",
			env("INVIGIL_RTC_TCP_PORT") + "/tcp",
			env("INVIGIL_TURN_UDP_PORT") + "/udp",
			env("INVIGIL_TURN_UDP_PORT") + "/tcp",
		} {
			port, proto, _ := strings.Cut(want, "/")
			if !slices.Contains(s.Ports, port+":"+port+"/"+proto) {
				t.Errorf("%s listens on %s but does not publish it as %s:%s/%s (the advertised port must be the host's)", name, want, port, port, proto)
			}
		}
		public := strconv.Itoa(8000 + i)
		if u := env("INVIGIL_PUBLIC_URL"); !strings.HasSuffix(u, ":"+public) {
			t.Errorf("%s: INVIGIL_PUBLIC_URL %q, want HAProxy's per-node port %s", name, u, public)
		}
		if !slices.Contains(haproxyPortsPublished, public+":"+public) {
			t.Errorf("haproxy does not publish %s, %s's public URL", public, name)
		}
		if !strings.Contains(haproxyCfg, fmt.Sprintf("use_backend node_invigil_%d if { dst_port %s }", i, public)) {
			t.Errorf("haproxy.cfg does not route port %s to %s", public, name)
		}
		if !strings.Contains(haproxyCfg, fmt.Sprintf("server %s %s:7880 check", name, name)) {
			t.Errorf("haproxy.cfg has no server %s", name)
		}
		if !strings.Contains(promCfg, "- "+name+":7880") {
			t.Errorf("prometheus.yml does not scrape %s", name)
		}
		if secret := env("INVIGIL_API_SECRET"); !strings.HasPrefix(secret, "${INVIGIL_API_SECRET:?") {
			t.Errorf("%s: the API secret must come from the environment, required (${INVIGIL_API_SECRET:?...}), not %q", name, secret)
		}
		if env("INVIGIL_REDIS_URL") == "" || env("INVIGIL_NODE_IP") == "" {
			t.Errorf("%s: cluster mode needs INVIGIL_REDIS_URL and INVIGIL_NODE_IP", name)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: want read_only and cap_drop ALL", name)
		}
		drain := mustDuration(t, env("INVIGIL_DRAIN_TIMEOUT"))
		if grace := mustDuration(t, s.StopGracePeriod); grace < drain+10*time.Second {
			t.Errorf("%s: stop_grace_period %s < drain timeout %s + shutdown timeout 10s", name, grace, drain)
		}
	}
	if bytes.Contains(raw, []byte("INVIGIL_API_SECRET: \"")) || regexp.MustCompile(`INVIGIL_API_SECRET: [^$\s]`).Match(raw) {
		t.Error("docker-compose.yml carries a literal API secret")
	}
}

// hostPort is the host side of a compose port mapping, with protocol:
// "127.0.0.1:8404:8404" -> "8404/tcp", "7882:7882/udp" -> "7882/udp".
func hostPort(mapping string) string {
	proto := "tcp"
	if m, p, ok := strings.Cut(mapping, "/"); ok {
		mapping, proto = m, p
	}
	parts := strings.Split(mapping, ":")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + proto
	}
	return parts[0] + "/" + proto
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// k8sObject is any Kubernetes manifest, decoded loosely.
type k8sObject map[string]any

// asObj returns v as an object, or nil. yaml.v3 decodes the nested maps of
// a k8sObject as k8sObject too.
func asObj(v any) k8sObject {
	switch m := v.(type) {
	case k8sObject:
		return m
	case map[string]any:
		return m
	}
	return nil
}

// path walks nested maps: o.path("spec", "template", "spec").
func (o k8sObject) path(keys ...string) any {
	var cur any = o
	for _, k := range keys {
		m := asObj(cur)
		if m == nil {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (o k8sObject) str(keys ...string) string {
	if v := o.path(keys...); v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func k8sObjects(t *testing.T) map[string]k8sObject {
	t.Helper()
	files, _ := filepath.Glob("kubernetes/*.yaml")
	objs := map[string]k8sObject{} // "Kind/name"
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		dec := yaml.NewDecoder(bytes.NewReader(readFile(t, f)))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o == nil {
				continue
			}
			if o.str("metadata", "namespace") != "" {
				t.Errorf("%s: %s names a namespace; the manifests are namespace-less", f, o.str("metadata", "name"))
			}
			objs[o.str("kind")+"/"+o.str("metadata", "name")] = o
		}
	}
	return objs
}

// TestKubernetesManifests: the workload runs on the host network with
// readiness on /readyz, liveness on /healthz, a preStop hook that drains
// the node and a grace period that covers the drain; non-root with a read-only root; resources
// requested; the Secret, ConfigMap, Services and PDB it refers to exist.
func TestKubernetesManifests(t *testing.T) {
	objs := k8sObjects(t)
	for _, want := range []string{"StatefulSet/invigil", "Service/invigil", "Service/invigil-nodes",
		"PodDisruptionBudget/invigil", "Secret/invigil-secrets", "ConfigMap/invigil-config"} {
		if objs[want] == nil {
			t.Errorf("%s missing", want)
		}
	}
	sts, cm, secret := objs["StatefulSet/invigil"], objs["ConfigMap/invigil-config"], objs["Secret/invigil-secrets"]
	if sts == nil || cm == nil || secret == nil {
		t.FailNow()
	}
	pod := asObj(sts.path("spec", "template", "spec"))
	if pod.path("hostNetwork") != true || pod.str("dnsPolicy") != "ClusterFirstWithHostNet" {
		t.Error("pods must use hostNetwork with dnsPolicy ClusterFirstWithHostNet")
	}
	if pod.path("securityContext", "runAsNonRoot") != true {
		t.Error("pod securityContext: runAsNonRoot")
	}
	containers, _ := pod.path("containers").([]any)
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := asObj(containers[0])
	if p := c.str("readinessProbe", "httpGet", "path"); p != "/readyz" {
		t.Errorf("readinessProbe path %q, want /readyz", p)
	}
	if p := c.str("livenessProbe", "httpGet", "path"); p != "/healthz" {
		t.Errorf("livenessProbe path %q, want /healthz", p)
	}
	if c.path("securityContext", "readOnlyRootFilesystem") != true || c.path("securityContext", "allowPrivilegeEscalation") != false {
		t.Error("container securityContext: readOnlyRootFilesystem true, allowPrivilegeEscalation false")
	}
	if drop, _ := c.path("securityContext", "capabilities", "drop").([]any); !slices.Contains(drop, any("ALL")) {
		t.Error("container securityContext: capabilities drop ALL")
	}
	if c.str("resources", "requests", "cpu") == "" || c.str("resources", "requests", "memory") == "" {
		t.Error("resources.requests cpu and memory")
	}
	if c.path("resources", "limits", "cpu") != nil {
		t.Error("no CPU limit: CFS throttling stalls media forwarding")
	}

	// preStop drains the node through its admin listener (`invigil
	// drain`, which reads INVIGIL_ADMIN_ADDR and INVIGIL_DRAIN_TIMEOUT);
	// the grace period covers that drain and the shutdown timeout.
	hook, _ := c.path("lifecycle", "preStop", "exec", "command").([]any)
	if len(hook) != 2 || hook[0] != "/usr/local/bin/invigil" || hook[1] != "drain" {
		t.Errorf("lifecycle.preStop.exec.command %v, want [/usr/local/bin/invigil drain]", hook)
	}
	data := func(k string) string { return cm.str("data", k) }
	if a := data("INVIGIL_ADMIN_ADDR"); !strings.HasPrefix(a, "127.0.0.1:") {
		t.Errorf("INVIGIL_ADMIN_ADDR %q: the admin listener (pprof, /drain) must be loopback, and set for the preStop drain", a)
	}
	drain := mustDuration(t, data("INVIGIL_DRAIN_TIMEOUT"))
	shutdown := mustDuration(t, data("INVIGIL_SHUTDOWN_TIMEOUT"))
	grace, _ := pod.path("terminationGracePeriodSeconds").(int)
	if need := drain + shutdown; time.Duration(grace)*time.Second < need {
		t.Errorf("terminationGracePeriodSeconds %d < drain + shutdown = %s", grace, need)
	}

	// The container exposes the media ports the ConfigMap configures.
	ports := map[string]bool{}
	list, _ := c.path("ports").([]any)
	for _, p := range list {
		po := asObj(p)
		ports[po.str("containerPort")+"/"+po.str("protocol")] = true
	}
	for _, want := range []string{data("INVIGIL_RTC_UDP_PORT") + "/UDP", data("INVIGIL_RTC_TCP_PORT") + "/TCP",
		data("INVIGIL_TURN_UDP_PORT") + "/UDP", data("INVIGIL_TURN_UDP_PORT") + "/TCP", "7880/TCP"} {
		if !ports[want] {
			t.Errorf("container port %s not declared", want)
		}
	}

	// Every secretKeyRef names a key of the Secret.
	keys := asObj(secret.path("stringData"))
	env, _ := c.path("env").([]any)
	for _, e := range env {
		eo := asObj(e)
		if ref := eo.str("valueFrom", "secretKeyRef", "key"); ref != "" {
			if _, ok := keys[ref]; !ok {
				t.Errorf("env %s refers to secret key %q, which invigil-secrets lacks", eo.str("name"), ref)
			}
		}
	}
	if pdb := objs["PodDisruptionBudget/invigil"]; pdb != nil && pdb.str("spec", "maxUnavailable") != "1" {
		t.Errorf("PodDisruptionBudget maxUnavailable %q, want 1", pdb.str("spec", "maxUnavailable"))
	}

	// The kustomization lists every manifest.
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(readFile(t, "kubernetes/kustomization.yaml"), &kust); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("kubernetes/*.yaml")
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(kust.Resources, b) {
			t.Errorf("kustomization.yaml does not list %s", b)
		}
	}
}

// TestKustomizeBuilds: `kubectl kustomize` renders the manifests, where
// kubectl is installed (offline: it needs no cluster). It is the one check
// skipped where its program is missing, CI included: Debian's kubectl
// (1.20) embeds a kustomize too old for the `labels` field, so the
// test-deps script cannot install a usable one; TestKubernetesManifests
// checks the same files without it.
func TestKustomizeBuilds(t *testing.T) {
	kubectl, ok := lookTool("kubectl")
	if !ok {
		t.Skip("kubectl is not installed; this check runs where a current kubectl is")
	}
	out, err := run(t, time.Minute, kubectl, "kustomize", "kubernetes")
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	if n := len(regexp.MustCompile(`(?m)^kind: `).FindAll(out, -1)); n < 6 {
		t.Errorf("kustomize rendered %d objects, want at least 6", n)
	}
}

// TestDockerfile: the image is built the way docs/operations.md says:
// golang 1.26 builder, static trimmed binary, distroless non-root runtime,
// the six public ports exposed.
func TestDockerfile(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	for _, want := range []string{
		"ARG GO_VERSION=1.26", "FROM golang:${GO_VERSION} AS build",
		"CGO_ENABLED=0 go build -trimpath", "./cmd/invigil",
		"FROM gcr.io/distroless/static-debian12:nonroot", "USER 65532:65532",
		`ENTRYPOINT ["/usr/local/bin/invigil"]`,
		"EXPOSE 7880/tcp 7881/tcp 7882/udp 3478/udp 3478/tcp 5349/tcp",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(df, "INVIGIL_API_SECRET") {
		t.Error("the Dockerfile must not carry the API secret")
	}
	ignore := string(readFile(t, "Dockerfile.dockerignore"))
	for _, want := range []string{".git", "bin", "data"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).MatchString(ignore) {
			t.Errorf("Dockerfile.dockerignore does not exclude %s", want)
		}
	}
}
