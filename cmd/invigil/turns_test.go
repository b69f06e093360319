package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 expiring
// at notAfter, as a renewal tool does (temporary name, then rename).
func writeTestCert(t *testing.T, certFile, keyFile string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "turn.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}, certFile: {Type: "CERTIFICATE", Bytes: der}} {
		if err := os.WriteFile(path+".tmp", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTURNSCertificateSIGHUP: a node serving TURN over TLS exports its
// certificate's expiry; a renewed certificate is taken on SIGHUP (sent to
// the node's PID), and the gauge follows.
func TestTURNSCertificateSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "turn.crt"), filepath.Join(dir, "turn.key")
	first := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	writeTestCert(t, certFile, keyFile, first)
	n := startNodeProc(t, "--turn-udp-port", strconv.Itoa(testclient.FreeUDPTCPPort(t)), "--turn-tls-port", strconv.Itoa(testclient.FreeUDPTCPPort(t)),
		"--turn-cert", certFile, "--turn-key", keyFile)
	expiry := func() float64 {
		return value(parse(t, scrape(t, n.base)), "invigil_turn_certificate_expiry_timestamp_seconds", nil)
	}
	if got := expiry(); got != float64(first.Unix()) {
		t.Fatalf("certificate expiry gauge %v, want %d", got, first.Unix())
	}

	renewed := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	writeTestCert(t, certFile, keyFile, renewed)
	if err := syscall.Kill(n.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testclient.Eventually(t, 5*time.Second, "the renewed certificate's expiry", func() bool { return expiry() == float64(renewed.Unix()) })
	// The SIGHUP path says so itself (the file poll logs only "loaded").
	testclient.Eventually(t, 5*time.Second, "the SIGHUP reload logged", func() bool {
		return strings.Contains(n.logs.String(), "turn certificate reloaded")
	})
}
