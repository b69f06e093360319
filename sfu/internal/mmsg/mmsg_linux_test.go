package mmsg

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestMmsghdrLayout(t *testing.T) {
	want := uintptr(32) // struct mmsghdr on 32-bit Linux
	if unsafe.Sizeof(uintptr(0)) == 8 {
		want = 64
	}
	if got := unsafe.Sizeof(mmsghdr{}); got != want {
		t.Fatalf("sizeof(mmsghdr) = %d, want %d", got, want)
	}
}

func TestNewRejectsBatchSize(t *testing.T) {
	c := listen4(t)
	for _, max := range []int{0, -1, MaxBatch + 1} {
		if _, err := NewReader(c, max); !errors.Is(err, ErrBatchSize) {
			t.Errorf("NewReader(max=%d) = %v, want ErrBatchSize", max, err)
		}
		if _, err := NewWriter(c, max); !errors.Is(err, ErrBatchSize) {
			t.Errorf("NewWriter(max=%d) = %v, want ErrBatchSize", max, err)
		}
	}
}

// TestRoundTrip sends a batch of 32 datagrams of different lengths from a
// Writer to a Reader of batch 8 and checks each one's bytes and source.
func TestRoundTrip(t *testing.T) {
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			src, dst := f.listen(t), f.listen(t)
			w, err := NewWriter(src, 32)
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(dst, 8)
			if err != nil {
				t.Fatal(err)
			}
			if want := f.name != "ipv4"; w.b.v6 != want || r.b.v6 != want {
				t.Fatalf("AF_INET6 detected: writer %v reader %v, want %v", w.b.v6, r.b.v6, want)
			}
			to := addrOf(dst)
			ms := make([]Message, 32)
			for i := range ms {
				ms[i] = Message{Buf: payload(i), Addr: to}
			}
			if n, err := w.Write(ms); n != 32 || err != nil {
				t.Fatalf("Write = %d, %v; want 32, nil", n, err)
			}
			got, calls := readN(t, dst, r, 32, 2048, 32)
			from := addrOf(src)
			for i, d := range got {
				if d.from != from {
					t.Errorf("datagram %d from %v, want %v", i, d.from, from)
				}
				if !bytes.Equal(d.data, payload(i)) {
					t.Errorf("datagram %d: %d bytes %x…, want %d bytes of %x", i, len(d.data), d.data[:1], len(payload(i)), i)
				}
			}
			if calls > 31 {
				t.Errorf("32 queued datagrams took %d Reads: not batched", calls)
			}
			t.Logf("32 datagrams in %d Reads of batch 8", calls)
		})
	}
}

// TestManySenders checks that one Reader tells apart datagrams from eight
// sockets by source port.
func TestManySenders(t *testing.T) {
	dst := listen4(t)
	r, err := NewReader(dst, 32)
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 8, 4
	port := make(map[uint16]byte)
	for s := range senders {
		c := listen4(t)
		port[addrOf(c).Port()] = byte(s)
		for k := range each {
			if _, err := c.WriteToUDPAddrPort([]byte{byte(s), byte(k)}, addrOf(dst)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, _ := readN(t, dst, r, senders*each, 64, 32)
	count := make(map[byte]int)
	for _, d := range got {
		s, ok := port[d.from.Port()]
		if !ok || d.from.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("datagram from unknown source %v", d.from)
		}
		if len(d.data) != 2 || d.data[0] != s {
			t.Fatalf("datagram %x from sender %d's port", d.data, s)
		}
		count[s]++
	}
	for s := range senders {
		if count[byte(s)] != each {
			t.Errorf("sender %d: %d datagrams, want %d", s, count[byte(s)], each)
		}
	}
}

// TestWriteManyDestinations sends one batch addressed to eight sockets
// and checks that each got exactly its own datagrams.
func TestWriteManyDestinations(t *testing.T) {
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			w, err := NewWriter(f.listen(t), 32)
			if err != nil {
				t.Fatal(err)
			}
			const dests = 8
			var cs [dests]*net.UDPConn
			ms := make([]Message, 32)
			for i := range cs {
				cs[i] = f.listen(t)
			}
			for i := range ms {
				ms[i] = Message{Buf: []byte{byte(i % dests), byte(i)}, Addr: addrOf(cs[i%dests])}
			}
			if n, err := w.Write(ms); n != len(ms) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			for d, c := range cs {
				r, err := NewReader(c, 8)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := readN(t, c, r, len(ms)/dests, 64, 8)
				for k, g := range got {
					if want := []byte{byte(d), byte(d + k*dests)}; !bytes.Equal(g.data, want) {
						t.Errorf("destination %d datagram %d = %x, want %x", d, k, g.data, want)
					}
				}
			}
		})
	}
}

func TestReadDeadline(t *testing.T) {
	c := listen4(t)
	r, err := NewReader(c, 8)
	if err != nil {
		t.Fatal(err)
	}
	ms := []Message{{Buf: make([]byte, 64)}}
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	n, err := r.Read(ms)
	var ne net.Error
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read = %d, %v; want 0 and a timeout", n, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > testTimeout {
		t.Fatalf("Read returned after %v, want at the 50ms deadline", d)
	}
	// The Reader still works once the deadline is lifted.
	if _, err := c.WriteToUDPAddrPort([]byte("x"), addrOf(c)); err != nil {
		t.Fatal(err)
	}
	if got, _ := readN(t, c, r, 1, 64, 1); string(got[0].data) != "x" {
		t.Fatalf("after the deadline read %q", got[0].data)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	c := listen4(t)
	r, err := NewReader(c, 8)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Read([]Message{{Buf: make([]byte, 64)}})
		done <- err
	}()
	waitParked(t, "mmsg.(*Reader).Read")
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Close did not unblock Read")
	}
}

// TestTruncated checks that datagrams longer than their buffer are dropped
// and counted, that the others keep their buffers, and that a batch of
// only truncated datagrams does not return empty.
func TestTruncated(t *testing.T) {
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			src, dst := f.listen(t), f.listen(t)
			r, err := NewReader(dst, 8)
			if err != nil {
				t.Fatal(err)
			}
			send := func(sizes ...int) {
				for _, n := range sizes {
					if _, err := src.WriteToUDPAddrPort(payload(n)[:n], addrOf(dst)); err != nil {
						t.Fatal(err)
					}
				}
			}
			check := func(got []datagram, sizes ...int) {
				t.Helper()
				for i, d := range got {
					if !bytes.Equal(d.data, payload(sizes[i])[:sizes[i]]) {
						t.Errorf("datagram %d: %d bytes, want %d", i, len(d.data), sizes[i])
					}
				}
			}
			const buf = 64
			// Each phase ends with a good datagram, so reading it means the
			// truncated ones before it were read too.
			send(10, 100, 20, 65, 30)
			got, _ := readN(t, dst, r, 3, buf, 8)
			check(got, 10, 20, 30)
			if got := r.Stats().Truncated; got != 2 {
				t.Fatalf("Truncated = %d, want 2", got)
			}
			send(100, 200, 64)
			got, _ = readN(t, dst, r, 1, buf, 8)
			check(got, 64)
			if got := r.Stats().Truncated; got != 4 {
				t.Fatalf("Truncated = %d, want 4", got)
			}
		})
	}
}

// TestRefusedSkipped checks that datagrams the kernel refuses (port 0:
// EINVAL; over 65,507 bytes: EMSGSIZE) or that the socket cannot address
// (IPv6 from AF_INET, an invalid address) are skipped and counted, in the
// middle of a batch, and the rest still go.
func TestRefusedSkipped(t *testing.T) {
	src, dst := listen4(t), listen4(t)
	w, err := NewWriter(src, 32)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(dst, 8)
	if err != nil {
		t.Fatal(err)
	}
	to := addrOf(dst)
	ms := []Message{
		{Buf: []byte("first"), Addr: to},
		{Buf: []byte("port zero"), Addr: netip.AddrPortFrom(to.Addr(), 0)},
		{Buf: make([]byte, 70000), Addr: to},
		{Buf: []byte("second"), Addr: to},
		{Buf: []byte("ipv6"), Addr: netip.MustParseAddrPort("[::1]:9")},
		{Buf: []byte("invalid")},
		{Buf: []byte("third"), Addr: to},
	}
	if n, err := w.Write(ms); n != len(ms) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(ms))
	}
	if got := w.Stats(); got.Refused != 4 || got.WouldBlock != 0 {
		t.Fatalf("Stats = %+v, want 4 refused", got)
	}
	// A last datagram after the batch shows nothing else arrived between.
	if n, err := w.Write([]Message{{Buf: []byte("last"), Addr: to}}); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got, _ := readN(t, dst, r, 4, 128, 8)
	for i, want := range []string{"first", "second", "third", "last"} {
		if string(got[i].data) != want {
			t.Errorf("datagram %d = %q, want %q", i, got[i].data, want)
		}
	}
}

// TestClassify covers the would-block path. On loopback a UDP send buffer
// never fills (the loopback device frees each datagram's send-buffer charge
// as it delivers it), so EAGAIN cannot be provoked deterministically
// there; what Write does with each errno is this table.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		errno unix.Errno
		want  sendVerdict
	}{
		{0, sendOK},
		{unix.EAGAIN, sendFull},
		{unix.EWOULDBLOCK, sendFull},
		{unix.ENOBUFS, sendFull},
		{unix.EMSGSIZE, sendRefused},
		{unix.EINVAL, sendRefused},
		{unix.ECONNREFUSED, sendRefused},
		{unix.EHOSTUNREACH, sendRefused},
		{unix.ENETUNREACH, sendRefused},
		{unix.EACCES, sendRefused},
		{unix.EPERM, sendRefused},
		{unix.EBADF, sendFailed},
		{unix.ENOTSOCK, sendFailed},
		{unix.EFAULT, sendFailed},
	} {
		if got := classify(tc.errno); got != tc.want {
			t.Errorf("classify(%v) = %d, want %d", tc.errno, got, tc.want)
		}
	}
}

func TestWriteClosed(t *testing.T) {
	src, dst := listen4(t), listen4(t)
	w, err := NewWriter(src, 8)
	if err != nil {
		t.Fatal(err)
	}
	src.Close()
	n, err := w.Write([]Message{{Buf: []byte("x"), Addr: addrOf(dst)}})
	if n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed socket = %d, %v; want 0, net.ErrClosed", n, err)
	}
}

// TestListenReusePort checks that n sockets share one port and that the
// kernel keeps each client's flow on one of them.
func TestListenReusePort(t *testing.T) {
	const socks, clients, each = 4, 32, 8
	conns, err := ListenReusePort("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, socks)
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != socks {
		t.Fatalf("got %d sockets, want %d", len(conns), socks)
	}
	port := addrOf(conns[0]).Port()
	for i, c := range conns {
		if p := addrOf(c).Port(); p != port || p == 0 {
			t.Fatalf("socket %d on port %d, want %d", i, p, port)
		}
	}

	type arrival struct {
		sock   int
		client byte
	}
	arrivals := make(chan arrival, clients*each)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, c := range conns {
		r, err := NewReader(c, 8)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms := make([]Message, 8)
			for k := range ms {
				ms[k].Buf = make([]byte, 16)
			}
			for {
				n, err := r.Read(ms)
				if err != nil {
					return // closed by the test
				}
				for _, m := range ms[:n] {
					arrivals <- arrival{i, m.Buf[0]}
				}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	to := addrOf(conns[0])
	for k := range clients {
		c := listen4(t)
		for range each {
			if _, err := c.WriteToUDPAddrPort([]byte{byte(k)}, to); err != nil {
				t.Fatal(err)
			}
		}
	}
	sockOf := make(map[byte]int)
	perSock := make([]int, socks)
	timeout := time.After(testTimeout)
	for range clients * each {
		select {
		case a := <-arrivals:
			if s, ok := sockOf[a.client]; ok && s != a.sock {
				t.Fatalf("client %d's flow reached sockets %d and %d", a.client, s, a.sock)
			}
			sockOf[a.client] = a.sock
			perSock[a.sock]++
		case <-timeout:
			t.Fatalf("only %d of %d datagrams arrived", len(sockOf), clients*each)
		}
	}
	used := 0
	for _, n := range perSock {
		if n > 0 {
			used++
		}
	}
	t.Logf("datagrams per socket: %v", perSock)
	// 32 flows all hashing to one of 4 sockets has probability 4^-31.
	if used < 2 {
		t.Fatalf("all %d flows reached one socket: SO_REUSEPORT not balancing", clients)
	}
}

func TestListenReusePortPicksPortOnce(t *testing.T) {
	for _, tc := range []struct {
		network string
		laddr   *net.UDPAddr
	}{
		{"udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}},
		{"udp6", &net.UDPAddr{IP: net.IPv6loopback}},
	} {
		t.Run(tc.network, func(t *testing.T) {
			conns, err := ListenReusePort(tc.network, tc.laddr, 3)
			if err != nil {
				if tc.network == "udp6" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for _, c := range conns[1:] {
				if addrOf(c) != addrOf(conns[0]) {
					t.Fatalf("sockets on %v and %v", addrOf(conns[0]), addrOf(c))
				}
			}
			// A socket without SO_REUSEPORT cannot join the group.
			if c, err := net.ListenUDP(tc.network, net.UDPAddrFromAddrPort(addrOf(conns[0]))); err == nil {
				c.Close()
				t.Fatal("a plain socket bound to the group's port")
			}
		})
	}
	if _, err := ListenReusePort("tcp", nil, 2); err == nil {
		t.Error("ListenReusePort(tcp) succeeded")
	}
	if _, err := ListenReusePort("udp4", nil, 0); err == nil {
		t.Error("ListenReusePort(n=0) succeeded")
	}
}

// TestZeroAllocs proves that a steady-state batch of 32 costs no
// allocation, to write and to read.
func TestZeroAllocs(t *testing.T) {
	for _, f := range families(t) {
		t.Run(f.name, func(t *testing.T) {
			src, dst := f.listen(t), f.listen(t)
			w, err := NewWriter(src, 32)
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(dst, 32)
			if err != nil {
				t.Fatal(err)
			}
			out, in := make([]Message, 32), make([]Message, 32)
			for i := range out {
				out[i] = Message{Buf: make([]byte, 1100), Addr: addrOf(dst)}
				in[i].Buf = make([]byte, 1500)
			}
			if err := dst.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
				t.Fatal(err)
			}
			var failed error
			allocs := testing.AllocsPerRun(200, func() {
				if n, err := w.Write(out); err != nil || n != len(out) {
					failed = errors.Join(failed, err, errors.New("short write"))
					return
				}
				for got := 0; got < len(out); {
					n, err := r.Read(in)
					if err != nil {
						failed = errors.Join(failed, err)
						return
					}
					got += n
				}
			})
			if failed != nil {
				t.Fatal(failed)
			}
			if allocs != 0 {
				t.Fatalf("%v allocations per batch of 32, want 0", allocs)
			}
		})
	}
}
