package testclient

// What a Client receives (per-track counts of packets, layers, frames and
// loss) and the link it receives over (a UDP socket that loses packets or
// is cut).

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Video is what a receiver saw of one video track.
type Video struct {
	Packets    int
	Tags       map[byte]int // packets by layer tag
	LastTag    byte
	SeqGaps    int // sequence numbers skipped or repeated
	PicGaps    int // VP8 picture IDs that did not follow on
	TSBackward int // timestamps that went back
	Unique     int // distinct sequence numbers received
	First      uint16
	Highest    uint16
	seen       map[uint16]bool
	lastSeq    uint16
	lastPic    uint16
	lastTS     uint32
}

func (v *Video) note(h *rtp.Header, payload []byte) {
	if v.seen == nil {
		v.seen, v.First, v.Highest = map[uint16]bool{}, h.SequenceNumber, h.SequenceNumber
	}
	if !v.seen[h.SequenceNumber] {
		v.seen[h.SequenceNumber] = true
		v.Unique++
	}
	if int16(h.SequenceNumber-v.Highest) > 0 {
		v.Highest = h.SequenceNumber
	}
	if v.Packets > 0 {
		if h.SequenceNumber != v.lastSeq+1 {
			v.SeqGaps++
		}
		if int32(h.Timestamp-v.lastTS) < 0 {
			v.TSBackward++
		}
	}
	if len(payload) > layerTagAt && payload[0] == 0x90 {
		pic := uint16(payload[2]&0x7F)<<8 | uint16(payload[3])
		if v.Packets > 0 && pic != (v.lastPic+1)&0x7FFF {
			v.PicGaps++
		}
		v.lastPic = pic
		v.LastTag = payload[layerTagAt]
		v.Tags[v.LastTag]++
	}
	v.lastSeq, v.lastTS = h.SequenceNumber, h.Timestamp
	v.Packets++
}

// SendREMB tells the server this client's downlink estimate (RFC draft
// alvestrand-rmcat-remb), as a browser does when REMB is negotiated.
func (c *Client) SendREMB(bitsPerSecond float64) error {
	c.mu.Lock()
	ssrcs := append([]uint32(nil), c.videoSSRCs...)
	c.mu.Unlock()
	if len(ssrcs) == 0 {
		return nil
	}
	return c.pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: float32(bitsPerSecond), SSRCs: ssrcs}})
}

// Loss is the share of the sequence numbers from the first to the
// highest received that never arrived (after retransmission).
func (v Video) Loss() float64 {
	span := int(v.Highest-v.First) + 1
	if v.Packets == 0 || span <= 0 {
		return 0
	}
	return 1 - float64(v.Unique)/float64(span)
}

// VideoFrom returns a copy of what arrived on publisher sid's video.
func (c *Client) VideoFrom(sid string) Video {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.video[sid]
	if !ok {
		return Video{}
	}
	out := *v
	out.seen = nil
	out.Tags = make(map[byte]int, len(v.Tags))
	for k, n := range v.Tags {
		out.Tags[k] = n
	}
	return out
}

// VideoCodec returns the MIME type of the video received from a
// publisher sid, "" before any.
func (c *Client) VideoCodec(sid string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.videoCodecs[sid]
}

// PacketsFrom returns how many RTP packets arrived from a publisher sid.
func (c *Client) PacketsFrom(sid string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received[sid]
}

func (c *Client) TotalReceived() (tracks int, packets int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.received {
		packets += n
	}
	return len(c.trackIDs), packets
}

// CutUDP drops every packet the client sends or receives for d, from
// now; the client needs Options.Cuttable.
func (c *Client) CutUDP(d time.Duration) {
	if c.conn == nil {
		c.t.Fatal("CutUDP needs Options.Cuttable")
	}
	c.conn.cutUntil.Store(time.Now().Add(d).UnixNano())
}

// lossyConn drops a share of the RTP packets it reads; STUN, DTLS and
// RTCP pass, so only media is lost (RFC 7983 §7 demultiplexing). While
// cut, it drops every packet both ways, as a dead Wi-Fi link would.
type lossyConn struct {
	*net.UDPConn
	drop     float64
	mu       sync.Mutex // guards rng
	rng      *rand.Rand
	Dropped  atomic.Int64
	cutUntil atomic.Int64 // unix nanos; the path is cut until then
}

func (c *lossyConn) cut() bool { return time.Now().UnixNano() < c.cutUntil.Load() }

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cut() {
		return len(b), nil // lost on the way, as UDP is
	}
	return c.UDPConn.WriteTo(b, addr)
}

func (c *lossyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err == nil && c.cut() {
			continue
		}
		if err != nil || n < 2 || b[0] < 128 || b[0] > 191 || (b[1]&0x7F >= 72 && b[1]&0x7F <= 76) {
			return n, addr, err
		}
		c.mu.Lock()
		lose := c.rng.Float64() < c.drop
		c.mu.Unlock()
		if !lose {
			return n, addr, err
		}
		c.Dropped.Add(1)
	}
}
