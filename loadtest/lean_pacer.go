package loadtest

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/invigil/invigil/loadtest/internal/lanes"
)

// The lean client's pacer: one goroutine sends every student's media. Its
// timer wheel holds each student's next video frame and next audio frame
// in the slot of its deadline; every tick it fires the slots that came
// due, building each packet in one reused buffer and encrypting it
// straight into the sendmmsg batch.

const (
	// pacerSlot is the wheel's resolution and the pacer's tick: a frame
	// waits at most this long past its deadline when the pacer keeps up.
	pacerSlot = 2 * time.Millisecond
	// wheelSlots spans 128 ms, more than the longest interval (a 33 ms
	// frame), so a rescheduled event never lands in the slot being fired.
	wheelSlots = 64
)

// pacerEvent is one student's next video frame or audio frame.
type pacerEvent struct {
	ls    *leanStudent
	at    int64 // deadline, on the run's clock
	audio bool
}

// pacerStats is what the pacer counts; read after it ends.
type pacerStats struct {
	late          delayHist // actual send time − scheduled time, per frame
	lateMax       time.Duration
	skippedFrames int64 // frames later than the next frame's schedule, not sent
	writeErrors   int64
}

type pacer struct {
	k     *leanKit
	w     *lanes.Writer
	rng   *rand.Rand
	plain [lanes.MaxDatagram]byte
	wheel [wheelSlots][]pacerEvent
	slot  int64 // the last slot fired
	stats pacerStats

	// mu guards pending: students connected since the last tick.
	mu      sync.Mutex
	pending []*leanStudent
}

func newPacer(k *leanKit, w *lanes.Writer) *pacer {
	return &pacer{k: k, w: w, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))}
}

// add hands a connected student to the pacer.
func (pc *pacer) add(ls *leanStudent) {
	pc.mu.Lock()
	pc.pending = append(pc.pending, ls)
	pc.mu.Unlock()
}

// loop fires due frames every tick until stop is closed.
func (pc *pacer) loop(stop <-chan struct{}) {
	t := time.NewTicker(pacerSlot)
	defer t.Stop()
	pc.slot = pc.k.r.clock() / int64(pacerSlot)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := pc.k.r.clock()
		pc.mu.Lock()
		joined := pc.pending
		pc.pending = nil
		pc.mu.Unlock()
		for _, ls := range joined {
			// A random phase into each interval, so students do not
			// all send on the same tick.
			pc.schedule(pacerEvent{ls: ls, at: now + pc.rng.Int64N(int64(frameInterval))})
			pc.schedule(pacerEvent{ls: ls, at: now + pc.rng.Int64N(int64(audioInterval)), audio: true})
		}
		last := now / int64(pacerSlot)
		for ; pc.slot < last; pc.slot++ {
			b := &pc.wheel[(pc.slot+1)%wheelSlots]
			for _, e := range *b {
				pc.fire(e)
			}
			clear(*b)
			*b = (*b)[:0]
		}
		if pc.w.Len() > 0 {
			if err := pc.w.Flush(); err != nil {
				pc.stats.writeErrors++
			}
		}
	}
}

// schedule puts e in its deadline's slot, or the next slot to fire if
// that one has passed.
func (pc *pacer) schedule(e pacerEvent) {
	s := max(e.at/int64(pacerSlot), pc.slot+1)
	b := &pc.wheel[s%wheelSlots]
	*b = append(*b, e)
}

// fire sends one due frame and schedules the student's next. A frame
// later than the next one's deadline is skipped, and counted: a pacer
// that falls behind shows as skipped frames, not as bursts.
func (pc *pacer) fire(e pacerEvent) {
	ls := e.ls
	if ls.lp.state.Load() != peerConnected {
		return // the student is gone: its events end here
	}
	interval := int64(frameInterval)
	if e.audio {
		interval = int64(audioInterval)
	}
	now := pc.k.r.clock()
	for now-e.at > interval {
		pc.stats.skippedFrames++
		if e.audio {
			ls.audioFrames++
			ls.audio.n++
		} else {
			ls.frame++
		}
		e.at += interval
	}
	late := time.Duration(max(now-e.at, 0))
	pc.stats.late.add(late)
	pc.stats.lateMax = max(pc.stats.lateMax, late)
	ls.lp.txMu.Lock()
	sent := 0
	if e.audio {
		sent = pc.audioFrame(ls, now)
	} else {
		sent = pc.videoFrame(ls, now)
		if now >= ls.nextSR {
			ls.nextSR = now + int64(reportEvery)
			ls.senderReports(pc.w, pc.plain[:])
		}
	}
	ls.lp.txMu.Unlock()
	pc.k.r.sent.Add(int64(sent))
	e.at += interval
	pc.schedule(e)
}

// videoFrame sends one frame on every layer the node wants: a keyframe
// every keyframeEvery frames, on request, and on a layer that resumes.
// It returns the packets sent; the caller holds txMu.
func (pc *pacer) videoFrame(ls *leanStudent, now int64) int {
	s := ls.s
	periodic := ls.frame%keyframeEvery == 0
	ts := ls.videoTS0 + ls.frame*videoTicks
	ls.frame++
	sent := 0
	for i, l := range ls.layers {
		if !s.layerOn[i].Load() {
			ls.wasOff[i] = true
			continue
		}
		key := s.forceKey[i].Swap(false) || periodic || ls.wasOff[i]
		ls.wasOff[i] = false
		size, packets := l.frameSize(key)
		v := &ls.video[i]
		f := v.vp8.next(key)
		for j := range packets {
			chunk := frameChunk(size, packets, j)
			pk := &v.ring[v.seq%ringSize]
			*pk = sentPacket{valid: true, marker: j == packets-1, start: j == 0, key: key, seq: v.seq, twcc: ls.twcc,
				ts: ts, frameBytes: int32(size), payloadSize: int32(vp8DescriptorSize + max(chunk, vp8KeyHeaderSize+stampSize)),
				frame: f, st: stamp{layer: uint8(i), seq: v.n, sent: now}}
			n := ls.videoPacket(pc.plain[:], i, pk)
			v.seq++
			v.n++
			ls.twcc++
			if !ls.lp.sealRTP(pc.w, pc.plain[:n]) {
				pc.stats.writeErrors++
				continue
			}
			v.packets++
			v.octets += uint32(pk.payloadSize)
			v.lastTS = ts
			sent++
		}
	}
	return sent
}

// audioFrame sends one 20 ms Opus-shaped packet.
func (pc *pacer) audioFrame(ls *leanStudent, now int64) int {
	a := &ls.audio
	n := ls.audioPacket(pc.plain[:], now)
	a.lastTS = ls.audioTS0 + ls.audioFrames*uint32(audioTicks)
	a.seq++
	a.n++
	ls.audioFrames++
	ls.twcc++
	if !ls.lp.sealRTP(pc.w, pc.plain[:n]) {
		pc.stats.writeErrors++
		return 0
	}
	a.packets++
	a.octets += uint32(audioBytes)
	return 1
}
