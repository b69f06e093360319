package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/invigil/invigil/internal/doctable"
)

// newTestNode builds a node on loopback ports, not running, closed when
// the test ends.
func newTestNode(t *testing.T) *node {
	t.Helper()
	cfg, err := parseServe([]string{"--api-secret", secret, "--http-addr", "127.0.0.1:0", "--rtc-udp-port", "0",
		"--rtc-tcp-port", "0", "--node-ip", "127.0.0.1", "--turn-udp-port", "0", "--data-dir", t.TempDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n, err := newNode(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	return n
}

// TestRoutesDocumented: docs/http.md's route table is the node's: every
// route it registers, with who may call it, and nothing else.
func TestRoutesDocumented(t *testing.T) {
	n := newTestNode(t)
	documented, err := doctable.ByCode("../../docs/http.md", "## Routes", 3) // `METHOD /path` | who | what
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, rt := range n.routes.List() {
		served[rt.Pattern] = true
		row, ok := documented[rt.Pattern]
		switch {
		case !ok:
			t.Errorf("%s (%s: %s) is served but not in docs/http.md", rt.Pattern, rt.Access, rt.Summary)
		case row[1] != rt.Access.String():
			t.Errorf("%s: docs/http.md says %q may call it; the node lets %q", rt.Pattern, row[1], rt.Access)
		}
	}
	for pattern := range documented {
		if !served[pattern] {
			t.Errorf("docs/http.md lists %s, which the node does not serve", pattern)
		}
	}
}
