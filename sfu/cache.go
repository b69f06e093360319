package sfu

import (
	"sync"
)

// Retransmission cache sizes, in packets. At the DESIGN.md bitrates a
// high layer (~500 kb/s) sends about 50 packets a second and a low layer
// (~150 kb/s) about 15–20: 128 and 64 slots keep 2.5–4 s of history, far
// past the ~1 s in which a NACK is still worth answering, at 192 KiB and
// 96 KiB per layer (1,536-byte slots). Audio is not NACKed (Opus FEC and
// concealment do better than a late retransmission), so it has none.
const (
	cacheSlotsHigh = 128
	cacheSlotsLow  = 64
	cacheSlotBytes = 1536
)

// packetCache is a ring of fixed slots holding a layer's most recent
// packets by sequence number, allocated once. The layer's reader puts;
// subscribers' RTCP readers get (to answer NACKs).
type packetCache struct {
	mu    sync.Mutex // guards everything below; held only to copy
	slots [][cacheSlotBytes]byte
	seqs  []uint16
	lens  []int // 0: empty slot
}

func newPacketCache(slots int) *packetCache {
	return &packetCache{slots: make([][cacheSlotBytes]byte, slots), seqs: make([]uint16, slots), lens: make([]int, slots)}
}

// put stores a marshalled packet under its sequence number.
func (c *packetCache) put(seq uint16, pkt []byte) {
	if len(pkt) > cacheSlotBytes {
		return
	}
	i := int(seq) % len(c.slots)
	c.mu.Lock()
	copy(c.slots[i][:], pkt)
	c.seqs[i], c.lens[i] = seq, len(pkt)
	c.mu.Unlock()
}

// get copies the packet with seq into dst and returns its length, or 0
// if it is no longer (or never was) cached.
func (c *packetCache) get(seq uint16, dst []byte) int {
	i := int(seq) % len(c.slots)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lens[i] == 0 || c.seqs[i] != seq {
		return 0
	}
	return copy(dst, c.slots[i][:c.lens[i]])
}
