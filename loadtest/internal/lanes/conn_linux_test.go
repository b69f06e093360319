package lanes

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// addrOf is participant i's address, as the lean client numbers them.
func addrOf(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})
}

// TestSourcesSpreadAndReturn is the design's premise on this kernel:
// datagrams sent from many 127/8 source addresses through one socket
// reach a server's SO_REUSEPORT group as distinct clients spread over its
// sockets, and the server's replies to each source come back through the
// same socket, IP_PKTINFO naming the participant.
func TestSourcesSpreadAndReturn(t *testing.T) {
	c, err := Listen()
	if errors.Is(err, ErrBindDevice) {
		t.Skip(err) // not root
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// A server like the node's: two sockets on one port, SO_REUSEPORT,
	// each echoing what it gets to its source.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) })
		return errors.Join(err, serr)
	}}
	var servers []*net.UDPConn
	addr := "127.0.0.1:0"
	for range 2 {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		s := pc.(*net.UDPConn)
		defer s.Close()
		addr = s.LocalAddr().String()
		servers = append(servers, s)
	}
	server := netip.MustParseAddrPort(addr)
	const clients = 200
	var wg sync.WaitGroup
	seen := make([]map[netip.AddrPort]bool, len(servers))
	for i, s := range servers {
		seen[i] = map[netip.AddrPort]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				n, from, err := s.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				seen[i][from] = true
				_, _ = s.WriteToUDPAddrPort(buf[:n], from)
			}
		}()
	}
	w, err := c.NewWriter(MaxBatch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range clients {
		if w.Full() {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		b := binary.BigEndian.AppendUint32(w.Next(), uint32(i))
		w.Commit(len(b), addrOf(i), server)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := c.NewReader(MaxBatch)
	if err != nil {
		t.Fatal(err)
	}
	ms := make([]Message, MaxBatch)
	for i := range ms {
		ms[i].Buf = make([]byte, MaxDatagram)
	}
	got := map[int]bool{}
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < clients {
		n, err := r.Read(ms)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(got), err)
		}
		for _, m := range ms[:n] {
			i := int(binary.BigEndian.Uint32(m.Buf[:m.N]))
			if m.Local != addrOf(i) || m.Remote != server {
				t.Fatalf("reply for %d came to %v from %v", i, m.Local, m.Remote)
			}
			got[i] = true
		}
	}
	for _, s := range servers {
		s.Close()
	}
	wg.Wait()
	total := 0
	for i := range seen {
		total += len(seen[i])
		if len(seen[i]) < clients/5 {
			t.Errorf("server socket %d saw %d of %d sources: SO_REUSEPORT did not spread them", i, len(seen[i]), clients)
		}
	}
	if total != clients {
		t.Errorf("the servers saw %d distinct sources, want %d", total, clients)
	}
}
