package turn

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	valid := func() Config {
		return Config{UDP: pc, Secret: []byte("s"), RelayIP: net.IPv4(127, 0, 0, 1)}
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"valid", func(*Config) {}, nil},
		{"no_listener", func(c *Config) { c.UDP = nil }, ErrNoListener},
		{"no_secret", func(c *Config) { c.Secret = nil }, ErrNoSecret},
		{"no_relay_ip", func(c *Config) { c.RelayIP = nil }, ErrNoRelayIP},
		{"unspecified_relay_ip", func(c *Config) { c.RelayIP = net.IPv4zero }, ErrNoRelayIP},
		{"tls_without_cert", func(c *Config) { c.TLS = ln }, ErrTLSConfig},
		{"cert_without_tls", func(c *Config) { c.CertFile, c.KeyFile = "c", "k" }, ErrTLSConfig},
		{"cert_without_key", func(c *Config) { c.TLS, c.CertFile = ln, "c" }, ErrTLSConfig},
		{"bind_family", func(c *Config) { c.RelayBindIP = net.IPv6loopback }, ErrInvalidAddr},
		{"bad_allow", func(c *Config) { c.AllowPeers = []netip.Prefix{{}} }, ErrInvalidAddr},
		{"wildcard_media", func(c *Config) {
			c.MediaAddrs = []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:7882")}
		}, ErrInvalidAddr},
		{"portless_deny", func(c *Config) {
			c.DenyAddrs = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}
		}, ErrInvalidAddr},
		{"wildcard_deny", func(c *Config) {
			c.DenyAddrs = []netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:7880")}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mod(&c)
			if err := c.Validate(); !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestNewFailureClosesListeners: New owns the listeners even when it
// refuses the config, so cmd need not close them on that path.
func TestNewFailureClosesListeners(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{UDP: pc, RelayIP: net.IPv4(127, 0, 0, 1)}); !errors.Is(err, ErrNoSecret) {
		t.Fatalf("New = %v, want ErrNoSecret", err)
	}
	if _, _, err := pc.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener still open: %v", err)
	}
}
