package loadtest

import (
	"encoding/binary"
	"time"
)

// What a synthetic student publishes, in one place. The camera's layers
// follow the exam workload (docs/benchmarks.md): simulcast with a low layer of 320×180 at
// ~150 kb/s (RID q) and a high one of 640×360 at ~500 kb/s (RID h), as the
// SDK publishes them; a single-layer camera is the high layer alone.
// Adding a layer (f, 1280×720) is one more entry in cameraLayers.

// videoLayer is one encoding of the synthetic camera.
type videoLayer struct {
	rid           string // "" for a single-layer camera
	width, height int
	bitrate       int // bits per second, keyframes included
}

// cameraLayers lists the camera's encodings, lowest first.
func cameraLayers(single bool) []videoLayer {
	high := videoLayer{rid: "h", width: 640, height: 360, bitrate: 500_000}
	if single {
		high.rid = ""
		return []videoLayer{high}
	}
	return []videoLayer{
		{rid: "q", width: 320, height: 180, bitrate: 150_000},
		high,
	}
}

// maxLayers bounds cameraLayers: the server keeps at most three.
const maxLayers = 3

// Frame shapes.
const (
	// frameRate is the camera's frames per second, on every layer, as a
	// browser's simulcast encoder runs them.
	frameRate     = 30
	frameInterval = time.Second / frameRate
	// keyframeEvery is the periodic keyframe interval in frames (2 s),
	// besides the keyframes PLI/FIR ask for.
	keyframeEvery = 2 * frameRate
	// keyframeWeight is how much larger a keyframe is than a delta frame.
	keyframeWeight = 4
	// maxPacketPayload keeps an RTP packet with its header extensions
	// and SRTP tag well under a 1,200-byte path MTU, as browsers do.
	maxPacketPayload = 1100

	// audioInterval is one Opus frame; audioBytes makes 32 kb/s of it.
	audioInterval = 20 * time.Millisecond
	audioBytes    = 32_000 / 8 / int(time.Second/audioInterval)
	// audioTicks is one frame in Opus's 48 kHz RTP clock (RFC 7587 §4.1).
	audioTicks = 48_000 / int(time.Second/audioInterval)
	// videoTicks is one frame in VP8's 90 kHz RTP clock (RFC 7741 §4.1).
	videoTicks = 90_000 / frameRate
	// opusTOC is the first byte of each audio payload: config 15 (hybrid,
	// full band, 20 ms), mono, one frame (RFC 6716 §3.1).
	opusTOC = 15 << 3
)

// deltaBytes and keyBytes are one layer's frame sizes: a keyframe every
// keyframeEvery frames at keyframeWeight times a delta frame, averaging
// the layer's bitrate.
func (l videoLayer) deltaBytes() int {
	perInterval := l.bitrate / 8 * keyframeEvery / frameRate
	return perInterval / (keyframeEvery - 1 + keyframeWeight)
}

func (l videoLayer) keyBytes() int { return keyframeWeight * l.deltaBytes() }

// frameSize is the size of one frame of l (a keyframe or not) and how
// many packets carry it.
func (l videoLayer) frameSize(key bool) (size, packets int) {
	size = l.deltaBytes()
	if key {
		size = l.keyBytes()
	}
	return size, (size + maxPacketPayload - 1) / maxPacketPayload
}

// frameChunk is how many of a size-byte frame's bytes its packet j of
// packets carries: an even share, the last packet the rest.
func frameChunk(size, packets, j int) int {
	per := size / packets
	if j == packets-1 {
		return size - per*(packets-1)
	}
	return per
}

// Layout of every synthetic payload. Video: a 6-byte VP8 payload
// descriptor (RFC 7741 §4.2: X=1, S on a frame's first packet, partition
// 0; I=1 with a 15-bit picture ID, L=1 with TL0PICIDX, T=1 and K=1 with
// TID, Y and KEYIDX), then on a frame's first packet the VP8 payload
// header (RFC 6386 §9.1: the 3-byte frame tag, and on a keyframe the
// start code and dimensions, 10 bytes in all), then the stamp at a fixed
// offset. Audio: the Opus TOC byte, then the stamp.
const (
	vp8DescriptorSize = 6
	vp8KeyHeaderSize  = 10
	stampAtVideo      = vp8DescriptorSize + vp8KeyHeaderSize
	stampAtAudio      = 1
	// stampSize: magic, layer index, stream sequence (4), send time (8).
	stampSize  = 14
	stampMagic = 0xA7
)

// stamp is what each packet tells its receiver: which layer it belongs
// to, its place in the sender's stream of that layer, and when it was
// sent (nanoseconds on the run's monotonic clock; sender and receiver
// are one process).
type stamp struct {
	layer uint8
	seq   uint32
	sent  int64
}

func putStamp(p []byte, s stamp) {
	p[0], p[1] = stampMagic, s.layer
	binary.BigEndian.PutUint32(p[2:], s.seq)
	binary.BigEndian.PutUint64(p[6:], uint64(s.sent))
}

// readStamp reads the stamp at p's start, if one is there.
func readStamp(p []byte) (stamp, bool) {
	if len(p) < stampSize || p[0] != stampMagic {
		return stamp{}, false
	}
	return stamp{layer: p[1], seq: binary.BigEndian.Uint32(p[2:]), sent: int64(binary.BigEndian.Uint64(p[6:]))}, true
}

// l1t3 is the temporal layer of each frame in a group of four (RFC 7741
// §4.2's TID; the L1T3 structure browsers use for VP8): 0, 2, 1, 2.
var l1t3 = [4]uint8{0, 2, 1, 2}

// vp8Stream numbers one layer's frames as an encoder does: picture ID,
// TL0PICIDX (one more at each temporal-layer-0 frame), the temporal
// pattern's position (restarted at every keyframe) and KEYIDX (one more
// at each keyframe). temporal says whether the layer is L1T3 (the low
// layer) or all base layer.
type vp8Stream struct {
	pic      uint16
	tl0, pos uint8
	keyIdx   uint8
	temporal bool
}

// vp8Frame is what one frame's descriptors say.
type vp8Frame struct {
	pic    uint16
	tl0    uint8
	tid    uint8
	sync   bool // Y: decodable from the last base-layer frame alone
	keyIdx uint8
}

// next returns the next frame's descriptor fields.
func (v *vp8Stream) next(key bool) vp8Frame {
	if key {
		v.pos = 0
		v.keyIdx = (v.keyIdx + 1) & 0x1F
	}
	var tid uint8
	if v.temporal {
		tid = l1t3[v.pos%4]
	}
	// The second TID-2 frame of a group refers to the TID-1 frame,
	// not the base: it is the only one without Y.
	sync := key || v.pos%4 != 3
	if tid == 0 {
		v.tl0++
	}
	f := vp8Frame{pic: v.pic, tl0: v.tl0, tid: tid, sync: sync, keyIdx: v.keyIdx}
	v.pic = (v.pic + 1) & 0x7FFF
	v.pos++
	return f
}

// writeVP8 fills p, one packet's payload of frame f of frameBytes, with
// the descriptor, the payload header when start, and the stamp. len(p)
// must be at least stampAtVideo+stampSize.
func writeVP8(p []byte, f vp8Frame, start, key bool, l videoLayer, frameBytes int, s stamp) {
	p[0] = 0x80 // X
	if start {
		p[0] |= 0x10 // S, partition index 0
	}
	p[1] = 0x80 | 0x40 | 0x20 | 0x10 // I, L, T, K
	p[2], p[3] = 0x80|byte(f.pic>>8)&0x7F, byte(f.pic)
	p[4] = f.tl0
	p[5] = f.tid<<6 | f.keyIdx&0x1F
	if f.sync {
		p[5] |= 0x20
	}
	clear(p[vp8DescriptorSize:stampAtVideo])
	if start {
		// Frame tag: P (0 = keyframe), version 0, show_frame, and a
		// first-partition size that fits the frame.
		firstPart := min(frameBytes/8, 1<<19-1)
		tag := uint32(firstPart)<<5 | 1<<4
		if !key {
			tag |= 1
		}
		h := p[vp8DescriptorSize:]
		h[0], h[1], h[2] = byte(tag), byte(tag>>8), byte(tag>>16)
		if key {
			h[3], h[4], h[5] = 0x9d, 0x01, 0x2a
			binary.LittleEndian.PutUint16(h[6:], uint16(l.width&0x3FFF))
			binary.LittleEndian.PutUint16(h[8:], uint16(l.height&0x3FFF))
		}
	}
	putStamp(p[stampAtVideo:], s)
}

// writeOpus fills p with the TOC byte and the stamp.
func writeOpus(p []byte, s stamp) {
	p[0] = opusTOC
	putStamp(p[stampAtAudio:], s)
}

// vp8DescriptorLen is the length of the VP8 payload descriptor at p's
// start (RFC 7741 §4.2), or -1 if p is too short for it.
func vp8DescriptorLen(p []byte) int {
	if len(p) < 1 {
		return -1
	}
	i := 1
	if p[0]&0x80 != 0 { // X
		if len(p) < 2 {
			return -1
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: one or two bytes of picture ID
			if len(p) <= i {
				return -1
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	if i > len(p) {
		return -1
	}
	return i
}

// rtpSeqPayload splits a raw RTP packet into its sequence number and
// payload (RFC 3550 §5.1, §5.3.1), without allocating.
func rtpSeqPayload(b []byte) (seq uint16, payload []byte, ok bool) {
	if len(b) < 12 || b[0]>>6 != 2 {
		return 0, nil, false
	}
	n := 12 + 4*int(b[0]&0x0F)
	if b[0]&0x10 != 0 { // X: a header extension follows the CSRCs
		if len(b) < n+4 {
			return 0, nil, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > 0 { // P: padding, its count in the last byte
		end -= int(b[end-1])
	}
	if n > end {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(b[2:]), b[n:end], true
}

// stampOf finds the stamp in a received payload: after the VP8
// descriptor and header room for video, after the TOC byte for audio.
func stampOf(payload []byte, video bool) (stamp, bool) {
	at := stampAtAudio
	if video {
		d := vp8DescriptorLen(payload)
		if d < 0 {
			return stamp{}, false
		}
		at = d + vp8KeyHeaderSize
	}
	if len(payload) < at {
		return stamp{}, false
	}
	return readStamp(payload[at:])
}
