package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// buildTimeout bounds `go build ./cmd/invigil`; a cold build compiles pion.
const buildTimeout = 4 * time.Minute

// binDir holds the binary built for this run; TestMain creates and removes it.
var binDir string

// buildOnce builds the binary at most once per run; builtPath and buildErr
// are its results, written only inside buildOnce.
var (
	buildOnce sync.Once
	builtPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "invigil-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: making the binary directory:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// invigilBinary returns the path of the invigil binary built from this
// module, building it on first use.
func invigilBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		builtPath, buildErr = build()
	})
	if buildErr != nil {
		t.Fatalf("building invigil: %v", buildErr)
	}
	return builtPath
}

// build runs `go build -o <binDir>/invigil ./cmd/invigil` in the module root.
func build() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	out := filepath.Join(binDir, "invigil")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/invigil")
	cmd.Dir = root
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/invigil in %s: %w\n%s", root, err, output.String())
	}
	return out, nil
}

// moduleRoot is the directory of the go.mod this package belongs to.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// checkLeaks fails t if a goroutine started during it outlives it (chromedp's
// readers, process waiters, console collectors). Call it first in a test so
// its cleanup runs after every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}
