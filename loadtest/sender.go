package loadtest

import (
	"math/rand/v2"
	"time"

	"github.com/pion/rtp"
)

// Sender pacing.
const (
	// sendTick is the sender's wake-up period. Each tick sends the frames
	// that fell due since the last, so a shorter tick spreads a run's
	// packets more evenly (smaller bursts into the node's socket) at the
	// cost of more wake-ups: 2 ms gives bursts of ~80 packets at 500
	// students and 500 wake-ups a second.
	sendTick = 2 * time.Millisecond
	// maxSendLag is how far behind schedule a stream may fall before
	// the sender skips the missed frames (and counts them) rather than
	// bursting to catch up: a saturated load generator shows as skipped
	// frames, not as a distorted measurement.
	maxSendLag = 200 * time.Millisecond
)

// sendState is one student's sending state, owned by the sender.
type sendState struct {
	started              bool
	nextVideo, nextAudio time.Time
	frame                uint32 // frames since start, paused layers included
	videoTS0, audioTS0   uint32
	seq                  [maxLayers]uint16 // next RTP sequence number per layer
	vp8                  [maxLayers]vp8Stream
	n                    [maxLayers]uint32 // packets sent per layer (the stamp's seq)
	wasOff               [maxLayers]bool
	audioSeq             uint16
	audioN               uint32
	audioFrames          uint32
}

// senderStats is what the sender counts; read after it ends.
type senderStats struct {
	lateMax        time.Duration // furthest behind schedule a frame was sent
	late           delayHist     // how far behind schedule each frame was sent
	skippedFrames  int64         // frames dropped because the sender lagged
	writeErrors    int64
	packetsByLayer [maxLayers]int64
	audioPackets   int64
}

// sender writes every student's media from one goroutine: no goroutine
// or timer per student, one reusable packet and buffer.
type sender struct {
	r     *run
	stats senderStats
	rng   *rand.Rand
	pkt   rtp.Packet // its header's Extensions keep their capacity across packets
	buf   [vp8DescriptorSize + maxPacketPayload]byte
}

// loop sends until stop is closed.
func (s *sender) loop(stop <-chan struct{}) {
	t := time.NewTicker(sendTick)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := time.Now()
		for _, st := range s.r.senders() {
			s.sendDue(st, now)
		}
	}
}

// sendDue sends a student's video frames and audio packets that are due
// at now. A student's first frame is a random phase into the frame
// interval, so students do not all send on the same tick.
func (s *sender) sendDue(st *student, now time.Time) {
	out := st.out.Load()
	tx := &st.tx
	if !tx.started {
		tx.started = true
		tx.nextVideo = now.Add(time.Duration(s.rng.Int64N(int64(frameInterval))))
		tx.nextAudio = now.Add(time.Duration(s.rng.Int64N(int64(audioInterval))))
		tx.videoTS0, tx.audioTS0 = s.rng.Uint32(), s.rng.Uint32()
		for i := range tx.seq {
			tx.seq[i] = uint16(s.rng.Uint32())
			tx.vp8[i] = vp8Stream{pic: uint16(s.rng.Uint32()) & 0x7FFF, tl0: uint8(s.rng.Uint32()), temporal: i == 0 && len(st.layers) > 1}
		}
		tx.audioSeq = uint16(s.rng.Uint32())
	}
	for !now.Before(tx.nextVideo) {
		late := now.Sub(tx.nextVideo)
		if late > maxSendLag {
			skipped := int64(late / frameInterval)
			s.stats.skippedFrames += skipped
			tx.frame += uint32(skipped)
			tx.nextVideo = tx.nextVideo.Add(time.Duration(skipped) * frameInterval)
			continue
		}
		s.stats.lateMax = max(s.stats.lateMax, late)
		s.stats.late.add(late)
		s.videoFrame(st, out)
		tx.nextVideo = tx.nextVideo.Add(frameInterval)
	}
	for !now.Before(tx.nextAudio) {
		if late := now.Sub(tx.nextAudio); late > maxSendLag {
			skipped := int64(late / audioInterval)
			tx.audioFrames += uint32(skipped)
			tx.nextAudio = tx.nextAudio.Add(time.Duration(skipped) * audioInterval)
			continue
		}
		s.audioFrame(st, out)
		tx.nextAudio = tx.nextAudio.Add(audioInterval)
	}
}

// videoFrame sends one frame on every layer the node wants: a keyframe
// every keyframeEvery frames, on request, and on a layer that resumes
// (as a browser restarts a re-enabled encoding).
func (s *sender) videoFrame(st *student, out *outTracks) {
	tx := &st.tx
	periodic := tx.frame%keyframeEvery == 0
	ts := tx.videoTS0 + tx.frame*videoTicks
	tx.frame++
	for i, l := range st.layers {
		if !st.layerOn[i].Load() {
			tx.wasOff[i] = true
			continue
		}
		key := st.forceKey[i].Swap(false) || periodic || tx.wasOff[i]
		tx.wasOff[i] = false
		size, packets := l.frameSize(key)
		f := tx.vp8[i].next(key)
		for j := range packets {
			chunk := frameChunk(size, packets, j)
			p := s.buf[:vp8DescriptorSize+max(chunk, vp8KeyHeaderSize+stampSize)]
			writeVP8(p, f, j == 0, key, l, size, stamp{layer: uint8(i), seq: tx.n[i], sent: s.r.clock()})
			s.header(j == packets-1, tx.seq[i], ts)
			if out.ridExt != 0 && out.midExt != 0 {
				_ = s.pkt.Header.SetExtension(out.midExt, out.mid)
				_ = s.pkt.Header.SetExtension(out.ridExt, out.rids[i])
			}
			s.pkt.Payload = p
			tx.seq[i]++
			tx.n[i]++
			if err := out.video[i].WriteRTP(&s.pkt); err != nil {
				s.stats.writeErrors++
				continue
			}
			s.stats.packetsByLayer[i]++
			s.r.sent.Add(1)
		}
	}
}

// audioFrame sends one 20 ms Opus-shaped packet.
func (s *sender) audioFrame(st *student, out *outTracks) {
	tx := &st.tx
	p := s.buf[:audioBytes]
	writeOpus(p, stamp{seq: tx.audioN, sent: s.r.clock()})
	s.header(false, tx.audioSeq, tx.audioTS0+tx.audioFrames*uint32(audioTicks))
	s.pkt.Payload = p
	tx.audioSeq++
	tx.audioN++
	tx.audioFrames++
	if err := out.audio.WriteRTP(&s.pkt); err != nil {
		s.stats.writeErrors++
		return
	}
	s.stats.audioPackets++
	s.r.sent.Add(1)
}

// header resets the reused packet's header, keeping the capacity of its
// extension list so tagging a layer allocates nothing. pion sets SSRC and
// payload type as it writes.
func (s *sender) header(marker bool, seq uint16, ts uint32) {
	exts := s.pkt.Header.Extensions[:0]
	s.pkt.Header = rtp.Header{Version: 2, Marker: marker, SequenceNumber: seq, Timestamp: ts, Extensions: exts}
}
