package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a run.
const (
	// proctorWait bounds the wait for the proctors' joined replies
	// before the students' ramp starts.
	proctorWait = 10 * time.Second
	// settle is how long after the ramp the steady window starts: the
	// last joins' DTLS handshakes and renegotiations are done by then.
	settle = 3 * time.Second
	// minSteady is the shortest steady window worth reporting.
	minSteady = 2 * time.Second
	// drain is how long after the students stop sending the proctors
	// keep counting: in-flight packets and retransmissions arrive.
	drain = 500 * time.Millisecond
	// teardownWorkers bounds concurrent leaves at the end.
	teardownWorkers = 32
	// teardownTimeout bounds the wait for every peer to close.
	teardownTimeout = 60 * time.Second
)

// run is one load run's state.
type run struct {
	cfg Config
	log *slog.Logger
	// epoch starts the run's clock: stamps carry nanoseconds since it
	// (monotonic; sender and receiver are this process).
	epoch    time.Time
	kit      *peerKit // --client pion
	lean     *leanKit // --client lean
	wsURL    string
	prefix   string
	layers   []videoLayer
	tokenTTL time.Duration
	// connCtx is for signaling I/O and is never cancelled: cancelling
	// a coder/websocket read closes the socket, and teardown closes
	// sockets itself after a polite leave.
	connCtx context.Context

	// steadyFrom is when the steady window opens, on the run's clock
	// (MaxInt64 until the ramp starts, and when there is none): proctors
	// keep the delays of packets received from then on apart.
	steadyFrom atomic.Int64

	nacks          atomic.Int64 // sequence numbers proctors NACKed
	sent           atomic.Int64 // RTP packets students wrote
	forwarded      atomic.Int64 // RTP packets proctors received
	forwardedBytes atomic.Int64

	// mu guards the fields below.
	mu           sync.Mutex
	stopping     bool           // teardown began: no new sessions
	registered   []*participant // every participant with a socket
	live         []*student     // connected students, for the sender
	bySID        map[string]*student
	serverErrors map[string]int // error codes the server sent

	wg sync.WaitGroup // sessions and the sender
}

// Run makes the participants of cfg join over cfg.Ramp, lets media flow
// until cfg.Duration has passed (or ctx is cancelled), closes every peer
// and returns what was measured. It returns ErrNoneConnected with the
// Result when nobody got a media connection.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Client == "" {
		cfg.Client = ClientLean
	}
	if cfg.FocusEvery == 0 || cfg.SingleLayer {
		cfg.FocusEvery = 0
	}
	wsURL, _ := signalURL(cfg.URL) // checked by Validate
	prefix := cfg.RoomPrefix
	if prefix == "" {
		var id [3]byte
		_, _ = rand.Read(id[:])
		prefix = "load-" + hex.EncodeToString(id[:]) + "-"
	}
	r := &run{
		cfg: cfg, log: cfg.Logger, wsURL: wsURL, prefix: prefix, epoch: time.Now(),
		layers:       cameraLayers(cfg.SingleLayer),
		tokenTTL:     cfg.Duration + tokenSlack,
		connCtx:      context.WithoutCancel(ctx),
		bySID:        map[string]*student{},
		serverErrors: map[string]int{},
	}
	r.steadyFrom.Store(math.MaxInt64)
	var startServer procSample
	if cfg.ServerPID != 0 {
		s, err := readProc(cfg.ServerPID)
		if err != nil {
			return nil, err
		}
		startServer = s
	}
	if cfg.Client == ClientPion {
		kit, err := newPeerKit(r.log, &r.nacks)
		if err != nil {
			return nil, err
		}
		r.kit = kit
	} else {
		lean, err := newLeanKit(r)
		if err != nil {
			return nil, err
		}
		r.lean = lean
	}
	res, err := r.execute(ctx, startServer)
	if err != nil {
		return res, err
	}
	if res.StudentsConnected+res.ProctorsConnected == 0 {
		return res, ErrNoneConnected
	}
	return res, nil
}

// clock is nanoseconds since the run's epoch, on the monotonic clock.
func (r *run) clock() int64 { return int64(time.Since(r.epoch)) }

// mark is a snapshot of the counters at one moment.
type mark struct {
	at                        time.Time
	sent, forwarded, fwdBytes int64
	self                      time.Duration
	server                    procSample
	serverOK                  bool
}

func (r *run) mark() mark {
	m := mark{at: time.Now(), sent: r.sent.Load(), forwarded: r.forwarded.Load(), fwdBytes: r.forwardedBytes.Load(), self: selfCPU()}
	if r.cfg.ServerPID != 0 {
		s, err := readProc(r.cfg.ServerPID)
		m.server, m.serverOK = s, err == nil
		if err != nil {
			r.log.Warn("read server process", "err", err)
		}
	}
	return m
}

// execute runs the phases: proctors join, students join over the ramp,
// media flows (proctors rotate focus), students stop, the counters are
// read, everyone leaves.
func (r *run) execute(ctx context.Context, startServer procSample) (*Result, error) {
	start := r.mark()
	start.server, start.serverOK = startServer, r.cfg.ServerPID != 0
	measure, cancel := context.WithDeadline(ctx, start.at.Add(r.cfg.Duration))
	defer cancel()

	students, proctors := r.participants()
	stopSend := make(chan struct{})
	snd := &sender{r: r, rng: mrand.New(mrand.NewPCG(uint64(start.at.UnixNano()), 1))}
	sendDone := make(chan struct{})
	if r.lean != nil {
		for _, p := range append(slices.Clip(students), proctors...) {
			r.lean.newPeer(p)
		}
		r.lean.start()
		close(sendDone)
	} else {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer close(sendDone)
			snd.loop(stopSend)
		}()
	}

	// Proctors first, as at an exam's start; the ramp waits for them.
	joined := make(chan struct{}, len(proctors))
	for _, p := range proctors {
		p.launched = true
		r.wg.Add(1)
		go p.session(r.connCtx, joined)
	}
	wait := time.NewTimer(proctorWait)
	for waiting := len(proctors); waiting > 0; {
		select {
		case <-joined:
			waiting--
		case <-wait.C:
			waiting = 0
		case <-measure.Done():
			waiting = 0
		}
	}
	wait.Stop()

	// The join storm: student k of n starts at ramp·k/n, rooms
	// interleaved so every room fills at the same pace.
	rampStart := time.Now()
	r.log.Info("students joining", "students", len(students), "ramp", r.cfg.Ramp)
	next := time.NewTimer(0)
	defer next.Stop()
launch:
	for k, s := range students {
		at := rampStart.Add(r.cfg.Ramp * time.Duration(k) / time.Duration(len(students)))
		next.Reset(time.Until(at))
		select {
		case <-next.C:
		case <-measure.Done():
			break launch
		}
		s.launched = true
		r.wg.Add(1)
		go s.session(r.connCtx, nil)
	}

	// Media flows; proctors rotate focus; the steady window opens once
	// the joins have settled.
	var steady *mark
	steadyAt := time.NewTimer(time.Until(rampStart.Add(r.cfg.Ramp + settle)))
	defer steadyAt.Stop()
	if start.at.Add(r.cfg.Duration).Sub(rampStart.Add(r.cfg.Ramp+settle)) < minSteady {
		steadyAt.Stop()
	} else {
		r.steadyFrom.Store(int64(rampStart.Add(r.cfg.Ramp + settle).Sub(r.epoch)))
	}
	var focusC <-chan time.Time
	if r.cfg.FocusEvery > 0 {
		t := time.NewTicker(r.cfg.FocusEvery)
		defer t.Stop()
		focusC = t.C
	}
flow:
	for {
		select {
		case <-measure.Done():
			break flow
		case <-steadyAt.C:
			m := r.mark()
			steady = &m
			r.log.Info("steady window", "students_sending", len(r.senders()))
		case <-focusC:
			for _, p := range proctors {
				p.proctor.rotateFocus(r.connCtx)
			}
		}
	}

	// Stop sending, let the last packets arrive, read the counters with
	// everyone still connected, then leave.
	close(stopSend)
	<-sendDone
	if r.lean != nil {
		r.lean.stopSending()
	}
	stopAt := time.Now()
	time.Sleep(drain)
	end := r.mark()
	end.at = stopAt
	r.log.Info("stopping", "elapsed", end.at.Sub(start.at).Round(time.Millisecond))
	err := r.teardown()
	if r.lean != nil {
		r.lean.close()
	}
	if err != nil {
		return nil, err
	}
	return r.result(students, proctors, r.sendFigures(snd), start, steady, end), nil
}

// sendFigures is how well the run's sender kept its schedule, with
// either client.
type sendFigures struct {
	lateMax, lateP99     time.Duration
	skipped, writeErrors int64
}

func (r *run) sendFigures(snd *sender) sendFigures {
	if r.lean != nil {
		st := &r.lean.pacer.stats
		return sendFigures{lateMax: st.lateMax, lateP99: st.late.quantile(0.99), skipped: st.skippedFrames, writeErrors: st.writeErrors}
	}
	st := &snd.stats
	return sendFigures{lateMax: st.lateMax, lateP99: st.late.quantile(0.99), skipped: st.skippedFrames, writeErrors: st.writeErrors}
}

// participants makes every participant of the run, students in their
// join order (rooms interleaved).
func (r *run) participants() (students, proctors []*participant) {
	c := r.cfg
	for i := range c.StudentsPerRoom {
		for room := range c.Rooms {
			p := r.newParticipant(len(students), room, fmt.Sprintf("s%d", i), roleStudent)
			p.student = newStudent(p, r.layers)
			students = append(students, p)
		}
	}
	for room := range c.Rooms {
		for i := range c.ProctorsPerRoom {
			p := r.newParticipant(i, room, fmt.Sprintf("p%d", i), roleProctor)
			p.proctor = newProctor(p, r.layers)
			proctors = append(proctors, p)
		}
	}
	return students, proctors
}

func (r *run) newParticipant(index, room int, who, role string) *participant {
	name := fmt.Sprintf("%sr%d", r.prefix, room)
	return &participant{r: r, index: index, roomIdx: room, roomName: name, identity: name + "-" + who, role: role}
}

// register records a participant's socket for teardown; false once
// teardown has begun.
func (r *run) register(p *participant, sig *signalConn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	p.sig = sig
	r.registered = append(r.registered, p)
	return true
}

func (r *run) addSID(sid string, s *student) {
	r.mu.Lock()
	r.bySID[sid] = s
	r.mu.Unlock()
}

func (r *run) studentBySID(sid string) *student {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bySID[sid]
}

// addSender hands a connected student to the sender.
func (r *run) addSender(s *student) {
	r.mu.Lock()
	r.live = append(r.live, s)
	r.mu.Unlock()
}

// senders is the students the sender serves now. The slice is only
// appended to, so its prefix may be read without the lock.
func (r *run) senders() []*student {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

func (r *run) serverError(code string) {
	r.mu.Lock()
	r.serverErrors[code]++
	r.mu.Unlock()
}

// teardown makes every participant leave and waits for every goroutine
// of the run.
func (r *run) teardown() error {
	r.mu.Lock()
	r.stopping = true
	all := r.registered
	r.mu.Unlock()
	work := make(chan *participant)
	var workers sync.WaitGroup
	for range min(teardownWorkers, max(len(all), 1)) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for p := range work {
				p.sig.leave(r.connCtx)
			}
		}()
	}
	for _, p := range all {
		work <- p
	}
	close(work)
	workers.Wait()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(teardownTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return errors.New("loadtest: peers did not close within " + teardownTimeout.String())
	}
}
