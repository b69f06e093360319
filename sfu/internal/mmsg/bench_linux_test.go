package mmsg

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// BenchmarkLoopback measures one datagram's send and receive over IPv4
// loopback (an op is one 1,100-byte datagram, the media plane's typical
// RTP packet): plain WriteToUDPAddrPort/ReadFromUDPAddrPort against
// Writer/Reader batches of 1 and 32.
func BenchmarkLoopback(b *testing.B) {
	const size = 1100
	b.Run("plain", func(b *testing.B) {
		src, dst := listenBench(b), listenBench(b)
		to := addrOf(dst)
		out, in := make([]byte, size), make([]byte, 1500)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := src.WriteToUDPAddrPort(out, to); err != nil {
				b.Fatal(err)
			}
			if _, _, err := dst.ReadFromUDPAddrPort(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, batch := range []int{1, 32} {
		b.Run("batch"+strconv.Itoa(batch), func(b *testing.B) {
			src, dst := listenBench(b), listenBench(b)
			w, err := NewWriter(src, batch)
			if err != nil {
				b.Fatal(err)
			}
			r, err := NewReader(dst, batch)
			if err != nil {
				b.Fatal(err)
			}
			out, in := make([]Message, batch), make([]Message, batch)
			for i := range out {
				out[i] = Message{Buf: make([]byte, size), Addr: addrOf(dst)}
				in[i].Buf = make([]byte, 1500)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				k := min(batch, b.N-i)
				if n, err := w.Write(out[:k]); n != k || err != nil {
					b.Fatalf("Write = %d, %v", n, err)
				}
				for got := 0; got < k; {
					n, err := r.Read(in)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}

// listenBench is listen4 for benchmarks, with a deadline so that a lost
// datagram fails the benchmark instead of hanging it.
func listenBench(b *testing.B) *net.UDPConn {
	b.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		b.Fatal(err)
	}
	return c
}
