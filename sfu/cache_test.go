package sfu

import (
	"bytes"
	"testing"
)

// TestPacketCacheKeepsTheNewestBytes: packets of mixed sizes come back
// exactly while they are within the byte budget, and not at all once
// overwritten, wrapped past, or displaced in the index by a sequence
// number 512 later.
func TestPacketCacheKeepsTheNewestBytes(t *testing.T) {
	c := newPacketCache(8 << 10)
	pkt := func(seq uint16) []byte {
		b := make([]byte, 200+int(seq)*37%1100)
		for i := range b {
			b[i] = byte(int(seq) + i)
		}
		return b
	}
	var kept int // bytes of the newest packets that fit the budget
	const last = 3000
	for seq := uint16(0); seq <= last; seq++ {
		c.put(seq, pkt(seq))
	}
	dst := make([]byte, maxCachedPacket)
	for seq := uint16(last); seq > last-100; seq-- {
		want := pkt(seq)
		n := c.get(seq, dst)
		if kept+len(want) <= 8<<10-maxCachedPacket { // surely still in the ring
			if n != len(want) || !bytes.Equal(dst[:n], want) {
				t.Fatalf("seq %d: got %d bytes, want its %d", seq, n, len(want))
			}
		}
		if kept > 8<<10 && n != 0 { // surely overwritten
			t.Fatalf("seq %d: %d bytes back from beyond the budget", seq, n)
		}
		kept += len(want)
	}
	if n := c.get(last-cacheIndex, dst); n != 0 {
		t.Errorf("a packet displaced in the index came back (%d bytes)", n)
	}
	if n := c.get(last+1, dst); n != 0 {
		t.Errorf("a packet never put came back")
	}
	c.put(last+1, make([]byte, maxCachedPacket+1))
	if n := c.get(last+1, dst); n != 0 {
		t.Errorf("an oversized packet was cached")
	}
}
