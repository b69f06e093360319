package loadtest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// proctor is a synthetic proctor: it answers the server's offers,
// receives every student of its room, and measures what arrives.
type proctor struct {
	p        *participant
	topLayer uint8 // the layer index a focus switches to

	// mu guards the fields below.
	mu          sync.Mutex
	students    []string          // identities of the room's students, in join order
	sids        map[string]string // identity → sid
	streams     []*recvStream     // every track received
	focusNext   int               // index into students of the next focus
	focusTimes  []time.Duration   // focus sent → first high-layer packet
	focusMissed int               // focuses replaced before they took effect

	// focus is the outstanding focus request, nil before the first.
	focus atomic.Pointer[focusReq]
}

// focusReq is one focus sent: the switch completes when the student's
// top layer first reaches this proctor after it was sent.
type focusReq struct {
	sid  string
	sent time.Time
	done atomic.Bool
}

// recvStream is one received track. Its reader owns every field but the
// identifying ones until the reader ends.
type recvStream struct {
	sid   string
	video bool

	seq     seqTracker
	delay   delayHist
	steady  delayHist // delays of the packets received in the steady window
	packets int64
	bytes   int64
	layers  [maxLayers]int64 // video packets by stamped layer
}

func newProctor(p *participant, layers []videoLayer) *proctor {
	return &proctor{p: p, topLayer: uint8(len(layers) - 1), sids: map[string]string{}}
}

// noteStudents records students announced by joined or
// participant_joined.
func (pr *proctor) noteStudents(ps ...participantInfo) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, p := range ps {
		if p.Role != roleStudent {
			continue
		}
		if _, ok := pr.sids[p.Identity]; !ok {
			pr.students = append(pr.students, p.Identity)
		}
		pr.sids[p.Identity] = p.SID
	}
}

// forget drops a student who left.
func (pr *proctor) forget(identity string) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if i := slices.Index(pr.students, identity); i >= 0 {
		pr.students = slices.Delete(pr.students, i, i+1)
		delete(pr.sids, identity)
	}
}

// onTrack reads one received track until the PeerConnection closes. The
// track's stream id is the publishing student's sid (docs/protocol.md,
// track_published). pion runs this on a goroutine of its own.
func (pr *proctor) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	if !pr.p.addReader() {
		return
	}
	defer pr.p.wg.Done()
	rs := &recvStream{sid: tr.StreamID(), video: tr.Kind() == webrtc.RTPCodecTypeVideo}
	pr.mu.Lock()
	pr.streams = append(pr.streams, rs)
	pr.mu.Unlock()
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		seq, payload, ok := rtpSeqPayload(buf[:n])
		if !ok {
			continue
		}
		pr.account(rs, time.Now(), pr.p.r.clock(), seq, payload, n)
	}
}

// account counts one received packet of rs (n bytes on the wire),
// received at wall (and clock, on the run's clock). Only rs's reader
// calls it.
func (pr *proctor) account(rs *recvStream, wall time.Time, clock int64, seq uint16, payload []byte, n int) {
	r := pr.p.r
	if rs.packets == 0 {
		// The student registered its sid before it could publish.
		if from := r.studentBySID(rs.sid); from != nil {
			from.noteFirstMedia(wall)
		}
	}
	rs.packets++
	rs.bytes += int64(n)
	r.forwarded.Add(1)
	r.forwardedBytes.Add(int64(n))
	rs.seq.add(seq)
	st, ok := stampOf(payload, rs.video)
	if !ok {
		return
	}
	rs.delay.add(time.Duration(clock - st.sent))
	if clock >= r.steadyFrom.Load() {
		rs.steady.add(time.Duration(clock - st.sent))
	}
	if rs.video && int(st.layer) < maxLayers {
		rs.layers[st.layer]++
		if st.layer == pr.topLayer {
			pr.noteTopLayer(rs.sid, wall)
		}
	}
}

// noteTopLayer completes an outstanding focus on sid.
func (pr *proctor) noteTopLayer(sid string, at time.Time) {
	f := pr.focus.Load()
	if f == nil || f.sid != sid || f.done.Load() || at.Before(f.sent) || !f.done.CompareAndSwap(false, true) {
		return
	}
	pr.mu.Lock()
	pr.focusTimes = append(pr.focusTimes, at.Sub(f.sent))
	pr.mu.Unlock()
}

// rotateFocus focuses the next student of the room, round robin,
// starting at a different student for each proctor of the room.
func (pr *proctor) rotateFocus(ctx context.Context) {
	if !pr.p.connected.Load() {
		return
	}
	pr.mu.Lock()
	if len(pr.students) == 0 {
		pr.mu.Unlock()
		return
	}
	identity := pr.students[(pr.focusNext+pr.p.index)%len(pr.students)]
	sid := pr.sids[identity]
	pr.focusNext++
	if prev := pr.focus.Load(); prev != nil && !prev.done.Load() {
		pr.focusMissed++
	}
	pr.mu.Unlock()
	pr.focus.Store(&focusReq{sid: sid, sent: time.Now()})
	_ = pr.p.sig.send(ctx, outMsg{Type: typeFocus, Identity: &identity})
}
