package mmsg

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testTimeout bounds every wait in these tests; loopback delivers in
// microseconds, so reaching it means a datagram was lost or a Read hung.
const testTimeout = 5 * time.Second

// family is one way of binding a socket on loopback.
type family struct {
	name   string
	listen func(t *testing.T) *net.UDPConn
}

// families are the socket kinds a Reader and Writer must handle: AF_INET,
// AF_INET6 on ::1, and AF_INET6 carrying IPv4 as IPv4-mapped addresses.
func families(t *testing.T) []family {
	fs := []family{{"ipv4", listen4}, {"dualstack", listenDual}}
	if c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback}); err == nil {
		c.Close()
		fs = append(fs, family{"ipv6", listen6})
	} else {
		t.Logf("no IPv6 loopback, skipping ipv6 cases: %v", err)
	}
	return fs
}

func listen4(t *testing.T) *net.UDPConn {
	return listenUDP(t, "udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}

func listen6(t *testing.T) *net.UDPConn {
	return listenUDP(t, "udp6", &net.UDPAddr{IP: net.IPv6loopback})
}

func listenUDP(t *testing.T, network string, addr *net.UDPAddr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP(network, addr)
	if err != nil {
		t.Fatalf("listen %s %v: %v", network, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listenDual binds an AF_INET6 socket with IPV6_V6ONLY off to
// ::ffff:127.0.0.1, so that it carries IPv4 loopback traffic as
// IPv4-mapped addresses without listening beyond loopback. The net package
// would make an AF_INET socket for that address, so the socket is made
// here and handed to it.
func listenDual(t *testing.T) *net.UDPConn {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "dualstack")
	defer f.Close()
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		t.Fatalf("IPV6_V6ONLY: %v", err)
	}
	sa := &unix.SockaddrInet6{Addr: netip.MustParseAddr("::ffff:127.0.0.1").As16()}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind: %v", err)
	}
	pc, err := net.FilePacketConn(f) // a duplicate of fd; f's is closed
	if err != nil {
		t.Fatalf("FilePacketConn: %v", err)
	}
	c := pc.(*net.UDPConn)
	t.Cleanup(func() { c.Close() })
	return c
}

// addrOf is c's local address as a Reader reports sources: unmapped.
func addrOf(c *net.UDPConn) netip.AddrPort {
	ap := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// datagram is a received datagram, copied out of its buffer.
type datagram struct {
	data []byte
	from netip.AddrPort
}

// readN reads with r until want datagrams came, checking that each Read
// stays within its batch size, and returns them and the number of Read
// calls it took.
func readN(t *testing.T, c *net.UDPConn, r *Reader, want, bufLen, batch int) ([]datagram, int) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	defer c.SetReadDeadline(time.Time{})
	ms := make([]Message, batch)
	for i := range ms {
		ms[i].Buf = make([]byte, bufLen)
	}
	var got []datagram
	calls := 0
	for len(got) < want {
		n, err := r.Read(ms)
		calls++
		if err != nil {
			t.Fatalf("Read after %d of %d datagrams: %v", len(got), want, err)
		}
		if n < 1 || n > batch {
			t.Fatalf("Read returned n=%d, want 1..%d", n, batch)
		}
		for _, m := range ms[:n] {
			got = append(got, datagram{bytes.Clone(m.Buf[:m.N]), m.Addr})
		}
	}
	if len(got) != want {
		t.Fatalf("got %d datagrams, want %d", len(got), want)
	}
	return got, calls
}

// payload is datagram i of a test batch: its length varies with i and
// every byte says which datagram it belongs to.
func payload(i int) []byte {
	return bytes.Repeat([]byte{byte(i)}, 1+i*37)
}

// waitParked waits until some goroutine is parked by the poller inside
// fn: the event a test of a blocking call synchronises on.
func waitParked(t *testing.T, fn string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, fn) {
				return
			}
		}
		runtime.Gosched()
	}
	t.Fatalf("no goroutine parked in %s after %v", fn, testTimeout)
}
