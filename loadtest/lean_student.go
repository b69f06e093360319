package loadtest

import (
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/invigil/invigil/loadtest/internal/lanes"
)

// A lean student's streams: RTP written by hand (RFC 3550 §5.1 with the
// RFC 8285 one-byte header extensions of the offer: mid, rid on video,
// transport-wide sequence), a ring of what each video layer sent so a
// NACK is answered by sending the same packet again (the same SRTP index
// and bytes: no RTX is negotiated, as with the pion client), and the
// keyframe requests the node sends.

// ringSize is each video layer's retransmission ring: 512 packets are
// over 8 s of the high layer, longer than any NACK on loopback waits.
// A slot is the packet's description (~48 bytes), not its bytes: the
// packet is rebuilt from it, byte for byte.
const ringSize = 512

// rtpHeaderSize is every lean RTP header: 12 bytes, the one-byte
// extension header, and 8 bytes of elements (mid, rid, transport-wide
// sequence, padding).
const rtpHeaderSize = 24

// sentPacket describes one sent video packet well enough to rebuild it.
type sentPacket struct {
	valid       bool
	marker      bool
	start, key  bool
	seq         uint16
	twcc        uint16
	ts          uint32
	frameBytes  int32
	payloadSize int32
	frame       vp8Frame
	st          stamp
}

// leanStream is one outgoing RTP stream of a student.
type leanStream struct {
	ssrc    uint32
	seq     uint16
	n       uint32 // stamps sent
	vp8     vp8Stream
	packets uint32 // for sender reports
	octets  uint32
	lastTS  uint32
	ring    []sentPacket // video only
}

// leanStudent is the pacer's view of a student. The pacer owns the
// frame counters; txMu (of its peer) guards the streams.
type leanStudent struct {
	lp     *leanPeer
	s      *student
	layers []videoLayer
	video  [maxLayers]leanStream
	audio  leanStream
	twcc   uint16

	// The pacer's.
	frame, audioFrames uint32
	videoTS0, audioTS0 uint32
	wasOff             [maxLayers]bool
	nextSR             int64
}

func newLeanStudent(lp *leanPeer, layers []videoLayer) *leanStudent {
	ls := &leanStudent{lp: lp, s: lp.p.student, layers: layers, audio: leanStream{ssrc: randomSSRC()}}
	for i := range layers {
		ls.video[i] = leanStream{ssrc: randomSSRC(), seq: uint16(randomSSRC()), ring: make([]sentPacket, ringSize),
			vp8: vp8Stream{pic: uint16(randomSSRC()) & 0x7FFF, tl0: uint8(randomSSRC()), temporal: i == 0 && len(layers) > 1}}
	}
	ls.audio.seq = uint16(randomSSRC())
	ls.videoTS0, ls.audioTS0 = randomSSRC(), randomSSRC()
	return ls
}

// putHeader writes an RTP header with the offer's extensions: mid, rid
// when rid is not 0, the transport-wide sequence.
func putHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32, mid, rid byte, twcc uint16) {
	b[0] = 0x90 // V=2, X
	b[1] = pt
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	b[12], b[13], b[14], b[15] = 0xBE, 0xDE, 0, 2 // RFC 8285 §4.2, two words
	e := b[16:rtpHeaderSize]
	clear(e)
	e[0], e[1] = extIDMid<<4, mid
	i := 2
	if rid != 0 {
		e[2], e[3] = extIDRID<<4, rid
		i = 4
	}
	e[i], e[i+1], e[i+2] = extIDTWCC<<4|1, byte(twcc>>8), byte(twcc)
}

// videoPacket builds the packet pk describes on layer i into b and
// returns its length.
func (ls *leanStudent) videoPacket(b []byte, i int, pk *sentPacket) int {
	var rid byte
	if r := ls.layers[i].rid; r != "" {
		rid = r[0]
	}
	putHeader(b, pk.marker, ptVP8, pk.seq, pk.ts, ls.video[i].ssrc, midCamera[0], rid, pk.twcc)
	writeVP8(b[rtpHeaderSize:rtpHeaderSize+pk.payloadSize], pk.frame, pk.start, pk.key, ls.layers[i], int(pk.frameBytes), pk.st)
	return rtpHeaderSize + int(pk.payloadSize)
}

// audioPacket builds the next audio packet into b.
func (ls *leanStudent) audioPacket(b []byte, sent int64) int {
	a := &ls.audio
	putHeader(b, false, ptOpus, a.seq, ls.audioTS0+ls.audioFrames*uint32(audioTicks), a.ssrc, midMic[0], 0, ls.twcc)
	writeOpus(b[rtpHeaderSize:rtpHeaderSize+audioBytes], stamp{seq: a.n, sent: sent})
	return rtpHeaderSize + audioBytes
}

// layerOf is the video layer of an SSRC the node names, -1 if none.
func (ls *leanStudent) layerOf(ssrc uint32) int {
	for i := range ls.layers {
		if ls.video[i].ssrc == ssrc {
			return i
		}
	}
	return -1
}

// rtcpIn applies the node's feedback: NACKs are answered from the ring
// at once (on the receive loop's writer), PLI and FIR ask the pacer for a
// keyframe on the layer.
func (ls *leanStudent) rtcpIn(b []byte, w *lanes.Writer) {
	for len(b) >= 4 && b[0]>>6 == 2 {
		n := 4 * (int(binary.BigEndian.Uint16(b[2:])) + 1)
		if n > len(b) {
			return
		}
		pt, count, body := int(b[1]), int(b[0]&0x1F), b[4:n]
		b = b[n:]
		switch {
		case pt == rtcpRTPFB && count == fmtNACK && len(body) >= 8:
			layer := ls.layerOf(binary.BigEndian.Uint32(body[4:]))
			ls.resend(layer, body[8:], w)
		case pt == rtcpPSFB && count == fmtPLI && len(body) >= 8:
			ls.keyframe(ls.layerOf(binary.BigEndian.Uint32(body[4:])))
		case pt == rtcpPSFB && count == fmtFIR && len(body) >= 16:
			ls.keyframe(ls.layerOf(binary.BigEndian.Uint32(body[8:])))
		}
	}
}

func (ls *leanStudent) keyframe(layer int) {
	ls.s.plis.Add(1)
	if layer >= 0 {
		ls.s.forceKey[layer].Store(true)
	}
}

// resend sends again each packet a NACK's FCIs ask for that the ring
// still holds.
func (ls *leanStudent) resend(layer int, fci []byte, w *lanes.Writer) {
	var plain [lanes.MaxDatagram]byte
	ls.lp.txMu.Lock()
	defer ls.lp.txMu.Unlock()
	for ; len(fci) >= 4; fci = fci[4:] {
		pid, blp := binary.BigEndian.Uint16(fci), binary.BigEndian.Uint16(fci[2:])
		ls.s.nacksIn.Add(int64(1 + bits.OnesCount16(blp)))
		if layer < 0 {
			continue
		}
		for i := range 17 {
			if i > 0 && blp&(1<<(i-1)) == 0 {
				continue
			}
			seq := pid + uint16(i)
			pk := &ls.video[layer].ring[seq%ringSize]
			if !pk.valid || pk.seq != seq {
				continue
			}
			n := ls.videoPacket(plain[:], layer, pk)
			ls.lp.sealRTP(w, plain[:n])
		}
	}
}

// senderReports sends one SR per stream that has sent (RFC 3550 §6.4.1);
// the pacer calls it about once a second, holding txMu.
func (ls *leanStudent) senderReports(w *lanes.Writer, buf []byte) {
	ntp := ntpTime(time.Now())
	out := buf[:0]
	for i := range ls.layers {
		if v := &ls.video[i]; v.packets > 0 {
			out = appendSR(out, v.ssrc, ntp, v.lastTS, v.packets, v.octets)
		}
	}
	if a := &ls.audio; a.packets > 0 {
		out = appendSR(out, a.ssrc, ntp, a.lastTS, a.packets, a.octets)
	}
	if len(out) == 0 {
		return
	}
	if w.Full() {
		_ = w.Flush()
	}
	sealed, err := ls.lp.keys.tx.EncryptRTCP(w.Next(), out, &ls.lp.txRTCPHd)
	if err == nil {
		w.Commit(len(sealed), ls.lp.local, ls.lp.node)
	}
}
