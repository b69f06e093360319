package main

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testcert"
	"github.com/invigil/invigil/internal/testclient"
)

// TestTURNSCertificateSIGHUP: a node serving TURN over TLS exports its
// certificate's expiry; a renewed certificate is taken on SIGHUP (sent to
// the node's PID), and the gauge follows.
func TestTURNSCertificateSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "turn.crt"), filepath.Join(dir, "turn.key")
	first := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	testcert.Write(t, certFile, keyFile, "first", first)
	n := startNodeProc(t, "--turn-udp-port", strconv.Itoa(testclient.FreeUDPTCPPort(t)), "--turn-tls-port", strconv.Itoa(testclient.FreeUDPTCPPort(t)),
		"--turn-cert", certFile, "--turn-key", keyFile)
	expiry := func() float64 {
		return value(parse(t, scrape(t, n.base)), "invigil_turn_certificate_expiry_timestamp_seconds", nil)
	}
	if got := expiry(); got != float64(first.Unix()) {
		t.Fatalf("certificate expiry gauge %v, want %d", got, first.Unix())
	}

	renewed := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	testcert.Write(t, certFile, keyFile, "renewed", renewed)
	if err := syscall.Kill(n.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testclient.Eventually(t, 5*time.Second, "the renewed certificate's expiry", func() bool { return expiry() == float64(renewed.Unix()) })
	// The SIGHUP path says so itself (the file poll logs only "loaded").
	testclient.Eventually(t, 5*time.Second, "the SIGHUP reload logged", func() bool {
		return strings.Contains(n.logs.String(), "turn certificate reloaded")
	})
}
