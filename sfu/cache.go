package sfu

import (
	"sync"
)

// Retransmission cache budgets, in bytes of packets kept per layer. A
// NACK is worth answering for about a second; past that the subscriber
// has asked for a keyframe. At the workload's bitrates 96 KiB hold ~1.5 s
// of a ~500 kb/s layer and 32 KiB ~1.7 s of a ~150 kb/s low layer (a
// 1.2 Mb/s 720p layer gets ~0.65 s, still several round trips). Packets
// are stored back to back at their own size, so the budget is time, not
// a packet count sized for the largest packet. Audio is not NACKed (Opus
// FEC and concealment do better than a late retransmission): no cache.
const (
	cacheBytesHigh = 96 << 10
	cacheBytesLow  = 32 << 10
	// cacheIndex is how many packets a cache can find by sequence
	// number: more than a budget ever holds (32 KiB of ≥ 200-byte
	// packets), so the bytes, not the index, decide what is kept.
	cacheIndex = 512
	// maxCachedPacket is the largest packet kept (an SRTP-free RTP
	// packet within the ~1,200-byte MTU browsers use, with room to spare).
	maxCachedPacket = 1536
)

// packetCache keeps a layer's most recent packets, marshalled, in one
// byte ring allocated once. The layer's reader puts; subscribers' RTCP
// readers get (to answer NACKs).
type packetCache struct {
	mu   sync.Mutex // guards everything below; held only to copy
	ring []byte
	head uint64 // bytes ever written to ring, wrap waste included
	idx  [cacheIndex]cacheEntry
}

// cacheEntry places one packet: at is its absolute position in the ring's
// byte stream, so it is still there while head ≤ at + len(ring).
type cacheEntry struct {
	at  uint64
	n   uint16
	seq uint16
}

func newPacketCache(bytes int) *packetCache {
	return &packetCache{ring: make([]byte, bytes)}
}

// put stores a marshalled packet under its sequence number.
func (c *packetCache) put(seq uint16, pkt []byte) {
	if len(pkt) == 0 || len(pkt) > maxCachedPacket || len(pkt) > len(c.ring) {
		return
	}
	size := uint64(len(c.ring))
	c.mu.Lock()
	off := c.head % size
	if off+uint64(len(pkt)) > size { // no room before the end: wrap
		c.head += size - off
		off = 0
	}
	copy(c.ring[off:], pkt)
	c.idx[int(seq)%cacheIndex] = cacheEntry{at: c.head, n: uint16(len(pkt)), seq: seq}
	c.head += uint64(len(pkt))
	c.mu.Unlock()
}

// get copies the packet with seq into dst and returns its length, or 0
// if it is no longer (or never was) cached.
func (c *packetCache) get(seq uint16, dst []byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.idx[int(seq)%cacheIndex]
	if e.n == 0 || e.seq != seq || c.head > e.at+uint64(len(c.ring)) {
		return 0
	}
	off := e.at % uint64(len(c.ring))
	return copy(dst, c.ring[off:off+uint64(e.n)])
}
