package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// toolTimeout bounds one run of tsc or node.
const toolTimeout = 2 * time.Minute

// sdkURL is the module specifier the consumer imports, as a platform
// would; the generated tsconfig maps it to invigil.d.ts.
const sdkURL = "https://invigil.example.com/sdk/invigil.js"

// tsc returns the TypeScript compiler scripts/install-test-deps.sh installs
// with npm ci in e2e/node. Missing, the test fails in CI (CI=true) and is
// skipped elsewhere.
func tsc(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "e2e", "node", "node_modules", ".bin", "tsc"))
	if err == nil {
		_, err = os.Stat(path)
	}
	if err != nil {
		missing(t, fmt.Sprintf("tsc (e2e/node/node_modules/.bin/tsc): %v", err))
	}
	return path
}

// node returns Node.js, which runs the SDK's modules to list their exports.
func node(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("node")
	if err != nil {
		missing(t, "node: "+err.Error())
	}
	return path
}

func missing(t *testing.T, what string) {
	t.Helper()
	msg := what + "; scripts/install-test-deps.sh installs it"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runTool runs a program with a hard timeout and returns its stdout; on
// failure the error carries its output.
func runTool(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// typeCheck runs tsc --noEmit --strict on files (absolute paths) with the
// SDK's URL mapped to its declarations, as docs/sdk.md tells platforms to.
func typeCheck(t *testing.T, files ...string) error {
	t.Helper()
	decl, err := filepath.Abs(filepath.Join("assets", "sdk", "invigil.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	config := map[string]any{
		"compilerOptions": map[string]any{
			"strict": true, "noEmit": true, "noUnusedLocals": true,
			"target": "es2022", "module": "esnext", "moduleResolution": "bundler",
			"lib":   []string{"es2022", "dom", "dom.iterable"},
			"paths": map[string][]string{sdkURL: {decl}},
		},
		"files": files,
	}
	dir := t.TempDir()
	b, _ := json.Marshal(config)
	if err := os.WriteFile(filepath.Join(dir, "tsconfig.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runTool(t, dir, tsc(t), "-p", dir, "--noEmit")
	return err
}

// TestSDKTypesConsumer type-checks testdata/sdk_consumer.ts, a platform's
// student and proctor code using every export, option and event, against
// invigil.d.ts.
func TestSDKTypesConsumer(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	consumer, err := filepath.Abs(filepath.Join("testdata", "sdk_consumer.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := typeCheck(t, consumer); err != nil {
		t.Fatal(err)
	}
}

// TestSDKTypesCatchMistakes makes sure the check above can fail: a consumer
// that reads a detail key the SDK does not have must not compile.
func TestSDKTypesCatchMistakes(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	bad := filepath.Join(t.TempDir(), "bad.ts")
	src := "import {ClientEvent, InvigilClient} from '" + sdkURL + "';\n" +
		"new InvigilClient({token: 't'}).addEventListener(ClientEvent.TrackPublished, (ev) => console.log(ev.detail.track.trackID));\n"
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	err := typeCheck(t, bad)
	if err == nil || !strings.Contains(err.Error(), "trackID") {
		t.Fatalf("tsc accepted a misspelt detail key (err: %v)", err)
	}
}

// sdkSurface is what the SDK's entry exports at run time.
type sdkSurface struct {
	Exports    []string          `json:"exports"`
	Events     []string          `json:"events"`
	Deprecated map[string]string `json:"deprecated"`
}

// runtimeSurface imports the embedded SDK in Node (a copy in a directory
// marked as ES modules) and lists its exports and event names.
func runtimeSurface(t *testing.T) sdkSurface {
	t.Helper()
	dir := t.TempDir()
	err := fs.WalkDir(assets, "assets/sdk", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(name)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(name)), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"type": "module"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `const m = await import('./invigil.js');
console.log(JSON.stringify({exports: Object.keys(m), events: Object.values(m.ClientEvent), deprecated: m.DEPRECATED_EVENTS}));`
	out, err := runTool(t, dir, node(t), "--input-type=module", "-e", script)
	if err != nil {
		t.Fatal(err)
	}
	var s sdkSurface
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if len(s.Exports) == 0 || len(s.Events) == 0 {
		t.Fatalf("the SDK exports nothing: %+v", s)
	}
	return s
}

// TestSDKTypesMatchExports checks that the values the SDK's modules export
// through the entry and the values invigil.d.ts declares are the same set:
// tsc rejects an object typed Record<keyof typeof sdk, true> that misses a
// declared name or has one the declarations lack.
func TestSDKTypesMatchExports(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	surface := runtimeSurface(t)
	var b strings.Builder
	b.WriteString("import * as sdk from '" + sdkURL + "';\n")
	b.WriteString("// The entry's exports at run time, from Node.\n")
	b.WriteString("export const exported: Record<keyof typeof sdk, true> = {\n")
	for _, name := range surface.Exports {
		fmt.Fprintf(&b, "  %s: true,\n", name)
	}
	b.WriteString("};\n")
	file := filepath.Join(t.TempDir(), "exports.ts")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := typeCheck(t, file); err != nil {
		t.Fatalf("the exports of /sdk/invigil.js %v and the values invigil.d.ts declares differ:\n%v", surface.Exports, err)
	}
}

// maxModuleLines is how long one SDK module may grow: past it, a module
// holds two concerns and should be two modules.
const maxModuleLines = 400

// TestSDKModulesStaySmall keeps each of the SDK's modules to one concern's size.
func TestSDKModulesStaySmall(t *testing.T) {
	entries, err := assets.ReadDir("assets/sdk")
	if err != nil {
		t.Fatal(err)
	}
	modules := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".js") {
			continue
		}
		modules++
		b, err := assets.ReadFile("assets/sdk/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte("\n")); n > maxModuleLines {
			t.Errorf("sdk/%s has %d lines; split it (at most %d)", e.Name(), n, maxModuleLines)
		}
	}
	if modules < 2 {
		t.Errorf("%d SDK modules; the SDK is the entry and the modules it imports", modules)
	}
}

// optionPattern finds the keys of InvigilClientOptions in invigil.d.ts.
var optionPattern = regexp.MustCompile(`(?m)^  (\w+)\??:`)

// TestSDKDocsCoverSurface checks that docs/sdk.md names every export, every
// event (and each deprecated name with its removal), and every option.
func TestSDKDocsCoverSurface(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	surface := runtimeSurface(t)
	doc, err := os.ReadFile(filepath.Join("..", "docs", "sdk.md"))
	if err != nil {
		t.Fatal(err)
	}
	decl, err := assets.ReadFile("assets/sdk/invigil.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	_, opts, ok := strings.Cut(string(decl), "export interface InvigilClientOptions {")
	opts, _, _ = strings.Cut(opts, "\n}")
	if !ok {
		t.Fatal("invigil.d.ts declares no InvigilClientOptions")
	}
	var options []string
	for _, m := range optionPattern.FindAllStringSubmatch(opts, -1) {
		options = append(options, m[1])
	}
	var names []string
	names = append(names, surface.Exports...)
	names = append(names, surface.Events...)
	names = append(names, options...)
	for old := range surface.Deprecated {
		names = append(names, old)
	}
	slices.Sort(names)
	for _, name := range names {
		if !strings.Contains(string(doc), "`"+name+"`") && !strings.Contains(string(doc), "`"+name+"(") {
			t.Errorf("docs/sdk.md does not name `%s`", name)
		}
	}
	for old, name := range surface.Deprecated {
		row := regexp.MustCompile("(?m)^\\|[^\\n]*`" + regexp.QuoteMeta(name) + "`[^\\n]*`" + regexp.QuoteMeta(old) + "`[^\\n]*0\\.2\\.0")
		if !row.Match(doc) {
			t.Errorf("docs/sdk.md has no event row naming %s with its old name %s and its removal in 0.2.0", name, old)
		}
	}
}
