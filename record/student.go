package record

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/invigil/invigil/sfu"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"
)

const (
	// stallAfter is how long a video source may send nothing before the
	// silence is recorded as a gap.
	stallAfter = time.Second
	// keyframeRetry spaces keyframe requests while video waits for one.
	keyframeRetry = time.Second
	// maxPacket is the largest RTP packet a tap copies.
	maxPacket = 1500
)

// packet is one tapped RTP packet on its way to the writer.
type packet struct {
	buf [maxPacket]byte
	n   int
	tap *tap
}

var packets = sync.Pool{New: func() any { return new(packet) }}

// tap receives one source's packets on the track's reader goroutines.
type tap struct {
	st      *student
	src     Source
	source  string // camera, microphone or screen
	dropped atomic.Int64
}

// WriteRTP copies the packet into a pooled buffer and queues it for the
// writer without blocking; a full queue drops it and says so.
func (t *tap) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p := packets.Get().(*packet)
	n, err := h.MarshalTo(p.buf[:])
	if err != nil || n+len(payload) > len(p.buf) {
		packets.Put(p)
		return 0, nil
	}
	n += copy(p.buf[n:], payload)
	p.n, p.tap = n, t
	select {
	case t.st.queue <- p: // p is the writer's now
	default:
		packets.Put(p)
		t.dropped.Add(1)
		t.st.r.dropped.Add(1)
		// The SFU then drops the rest of the picture and waits for the
		// next keyframe, as for a subscriber whose backlog is full; the
		// writer records the gap (queue_full).
		return 0, errQueueFull
	}
	return n, nil
}

// errQueueFull is a packet the writer's queue had no room for.
var errQueueFull = errors.New("record: the writer's queue is full")

// Write is unused: the SFU writes parsed packets.
func (t *tap) Write(b []byte) (int, error) { return len(b), nil }

// control messages from the taps' watchers to the writer.
type control struct {
	add   *tap
	ended *tap
}

// student is one student's recording session: its taps, its writer
// goroutine and its manifest. Everything below queue is the writer's.
type student struct {
	r   *Recorder
	log *slog.Logger

	queue    chan *packet
	ctl      chan control
	quit     chan struct{}
	quitOnce sync.Once
	reason   atomic.Pointer[string] // why quit was closed
	done     chan struct{}          // closed when run returns

	man     Manifest
	tracks  map[*tap]*track
	segs    map[string]*segment // camera, screen
	counts  map[string]int      // segments opened per source
	stopped string              // reason the session ended
}

func newStudent(r *Recorder, room, identity string) (*student, error) {
	dir := r.studentDir(room, identity)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	st := &student{
		r:     r,
		log:   r.log.With("room", room, "identity", identity),
		queue: make(chan *packet, queuePackets),
		ctl:   make(chan control),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		man: Manifest{Version: ManifestVersion, Room: room, Identity: identity, Node: r.cfg.NodeID,
			Session: now.Format("20060102T150405.000Z"), Started: now, Files: []File{}, Gaps: []Gap{}, Dir: dir},
		tracks: map[*tap]*track{},
		segs:   map[string]*segment{},
		counts: map[string]int{},
	}
	st.man.Session = strings.ReplaceAll(st.man.Session, ".", "")
	if err := r.writeManifest(&st.man); err != nil {
		return nil, err
	}
	return st, nil
}

// add starts tapping src. It reports false if the session ended first.
func (s *student) add(src Source) bool {
	t := &tap{st: s, src: src, source: src.Source()}
	select {
	case s.ctl <- control{add: t}:
	case <-s.done:
		return false
	}
	stop := src.Tap(t, s.r.cfg.Quality)
	go func() {
		select {
		case <-src.Done():
		case <-s.quit:
		}
		stop()
		select {
		case s.ctl <- control{ended: t}:
		case <-s.done:
		}
	}()
	return true
}

// stop ends the session with reason.
func (s *student) stop(reason string) {
	s.quitOnce.Do(func() {
		s.reason.Store(&reason)
		close(s.quit)
	})
}

// run is the writer: it owns the tracks, segments and manifest.
func (s *student) run() {
	defer close(s.done)
	s.r.cfg.Events(s.man.Room, EventStarted, s.man.Identity, map[string]any{"session": s.man.Session})
	s.log.Info("recording started", "session", s.man.Session)
	for s.stopped == "" {
		select {
		case p := <-s.queue:
			s.handle(p)
		case c := <-s.ctl:
			s.control(c)
		case <-s.quit:
			s.stopped = *s.reason.Load()
		}
	}
	s.finish()
}

func (s *student) control(c control) {
	switch {
	case c.add != nil:
		tr := newTrack(c.add)
		if tr == nil {
			codec := c.add.src.Codec().MimeType
			s.log.Warn("not recording a track: codec not supported", "source", c.add.source, "codec", codec)
			s.r.cfg.Events(s.man.Room, EventStopped, s.man.Identity, map[string]any{
				"source": c.add.source, "reason": "codec_unsupported", "codec": codec})
			return
		}
		s.tracks[c.add] = tr
		if tr.video {
			c.add.src.RequestKeyframe(s.r.cfg.Quality)
		}
	case c.ended != nil:
		// The tap was stopped before it said it ended: what it queued
		// before that is all in the queue now, and goes in first.
		s.drainQueue()
		if tr := s.tracks[c.ended]; tr != nil {
			s.flushHeld(tr)
		}
		delete(s.tracks, c.ended)
		if len(s.tracks) == 0 && s.stopped == "" {
			s.stopped = "tracks_ended"
		}
	}
}

// drainQueue handles every packet queued now.
func (s *student) drainQueue() {
	for s.stopped == "" {
		select {
		case p := <-s.queue:
			s.handle(p)
		default:
			return
		}
	}
}

func (s *student) handle(p *packet) {
	t := p.tap
	tr := s.tracks[t]
	if tr == nil {
		packets.Put(p)
		return
	}
	pkt := &rtp.Packet{}
	err := pkt.Unmarshal(p.buf[:p.n])
	if err == nil {
		// The jitter buffer keeps the packet; the pooled buffer goes back.
		pkt.Payload = append([]byte(nil), pkt.Payload...)
	}
	packets.Put(p)
	if err != nil {
		return
	}
	now := time.Now()
	if d := t.dropped.Swap(0); d > 0 && tr.video {
		s.lost(tr, now, "queue_full")
	}
	tr.sb.Push(pkt)
	for sample := tr.sb.Pop(); sample != nil; sample = tr.sb.Pop() {
		s.write(tr, sample, now)
		if s.stopped != "" {
			return
		}
	}
}

// write puts one frame into the source's current segment.
func (s *student) write(tr *track, sample *media.Sample, now time.Time) {
	if len(sample.Data) == 0 {
		return
	}
	at := tr.wallTime(sample.PacketTimestamp, now)
	if !tr.video {
		seg := s.segs["camera"]
		if seg == nil || !seg.audio {
			return // audio is kept with the camera's video
		}
		ms := at.Sub(seg.start).Milliseconds()
		if ms < 0 {
			return // from before the segment's first video frame
		}
		ms = max(ms, tr.lastMS+1) // strictly increasing, as muxers want
		tr.lastMS = ms
		seg.mux.writeAudio(ms, sample.Data)
		return
	}
	// Each video frame waits for the next: when the tap moves to another
	// simulcast layer, that layer's keyframe shows the same captured
	// instant as the old layer's last frame (a tick or two later on the
	// tap's clock). The keyframe replaces it: one frame per instant.
	h := tr.held
	tr.held = &heldFrame{sample: sample, at: at, now: now}
	if h == nil {
		return
	}
	if tr.keyFrame(sample.Data) && at.Sub(h.at) < sameInstant {
		sample.PrevDroppedPackets += h.sample.PrevDroppedPackets
		return
	}
	s.writeVideo(tr, h.sample, h.at, h.now)
}

// sameInstant is how close two frames' times are for one to be the
// other's capture seen through another layer: far below any frame
// interval (16 ms at 60 fps), above a layer switch's few ticks.
const sameInstant = 5 * time.Millisecond

// heldFrame is a video frame waiting for the next one (see write).
type heldFrame struct {
	sample  *media.Sample
	at, now time.Time
}

// flushHeld writes what a track still holds: the frames in its jitter
// buffer (the last one waits there for the next to begin) and the held
// video frame.
func (s *student) flushHeld(tr *track) {
	now := time.Now()
	tr.sb.Flush()
	for sample := tr.sb.Pop(); sample != nil && s.stopped == ""; sample = tr.sb.Pop() {
		s.write(tr, sample, now)
	}
	if h := tr.held; h != nil && s.stopped == "" {
		tr.held = nil
		s.writeVideo(tr, h.sample, h.at, h.now)
	}
}

// writeVideo puts one video frame captured at at into its segment.
func (s *student) writeVideo(tr *track, sample *media.Sample, at, now time.Time) {
	if sample.PrevDroppedPackets > 0 {
		s.lost(tr, tr.lastAt, "packet_loss")
	}
	if !tr.lastAt.IsZero() && at.Sub(tr.lastAt) > stallAfter && tr.gapSince.IsZero() {
		// A stall (the sender sent nothing) ends with this frame: the
		// stream goes on from the frames before it, so no keyframe is
		// needed and the gap is no longer than the silence. (Loss, in
		// lost, waits for a keyframe.)
		tr.gapSince, tr.gapReason = tr.lastAt, "stall"
		s.gap(tr, at)
	}
	key, data := tr.keyFrame(sample.Data), sample.Data
	if tr.h264 {
		var ok bool
		if key, data, ok = s.h264Frame(tr, data); !ok {
			return
		}
	}
	if tr.needKey && !key {
		if now.Sub(tr.keyAsked) > keyframeRetry {
			tr.keyAsked = now
			tr.tap.src.RequestKeyframe(s.r.cfg.Quality)
		}
		return
	}
	if key {
		if w, h, ok := vp8Size(sample.Data); ok && !tr.h264 {
			tr.width, tr.height = w, h
		}
		if !tr.gapSince.IsZero() {
			s.gap(tr, at)
		}
		tr.needKey = false
	}
	seg := s.segs[tr.tap.source]
	// A simulcast tap starts on the first keyframe of any layer and moves
	// up at the high layer's: VP8 in WebM carries the new size in that
	// keyframe, so the file goes on (its header has the first size). An
	// H.264 file's sample entry holds the stream's parameter sets: new
	// ones (another layer, another size) start the next file.
	if key && (seg == nil || at.Sub(seg.start) >= s.r.cfg.Segment ||
		tr.h264 && (!bytes.Equal(seg.sps, tr.sps) || !bytes.Equal(seg.pps, tr.pps))) {
		if seg = s.rotate(tr, at); seg == nil {
			return
		}
	}
	if seg == nil {
		return
	}
	// Strictly increasing block times: two frames within one millisecond
	// (a layer switch continues the stream a few ticks on) or a step back
	// after a timestamp jump would give players equal or falling times.
	ms := max(at.Sub(seg.start).Milliseconds(), tr.lastMS+1)
	tr.lastMS, tr.segN, tr.lastAt = ms, seg.n, at
	seg.last = at
	seg.mux.writeVideo(key, ms, data)
	if err := seg.mux.err(); err != nil {
		s.fail(err)
	}
	if at.Sub(seg.start) >= s.r.cfg.Segment && now.Sub(tr.keyAsked) > keyframeRetry {
		tr.keyAsked = now // the next segment starts on the next keyframe
		tr.tap.src.RequestKeyframe(s.r.cfg.Quality)
	}
}

// lost marks video from at on as missing until the next keyframe.
func (s *student) lost(tr *track, at time.Time, reason string) {
	tr.needKey = true
	if tr.gapSince.IsZero() {
		if at.IsZero() {
			at = time.Now()
		}
		tr.gapSince, tr.gapReason = at, reason
	}
	now := time.Now()
	if now.Sub(tr.keyAsked) > keyframeRetry/4 {
		tr.keyAsked = now
		tr.tap.src.RequestKeyframe(s.r.cfg.Quality)
	}
}

// gap records the end of a gap at to: an audit event and a manifest entry.
func (s *student) gap(tr *track, to time.Time) {
	g := Gap{Source: tr.tap.source, From: tr.gapSince.UTC(), To: to.UTC(), Reason: tr.gapReason}
	tr.gapSince = time.Time{}
	if !g.To.After(g.From) {
		return
	}
	g.EventSeq = s.r.cfg.Events(s.man.Room, EventGap, s.man.Identity, map[string]any{
		"source": g.Source, "from": g.From, "to": g.To, "reason": g.Reason,
		"duration_ms": g.To.Sub(g.From).Milliseconds()})
	s.man.Gaps = append(s.man.Gaps, g)
	if err := s.r.writeManifest(&s.man); err != nil {
		s.fail(err)
	}
}

// rotate closes the source's segment and opens the next at a keyframe.
func (s *student) rotate(tr *track, at time.Time) *segment {
	source := tr.tap.source
	if old := s.segs[source]; old != nil {
		delete(s.segs, source)
		if !s.closeSegment(old) {
			return nil
		}
	}
	withAudio := false
	if source == "camera" {
		for _, t := range s.tracks {
			if !t.video && t.tap.source == "microphone" {
				withAudio, t.lastMS = true, -1
			}
		}
	}
	s.counts[source]++
	seg := &segment{source: source, n: s.counts[source], start: at, audio: withAudio}
	var err error
	if tr.h264 {
		seg.name = fmt.Sprintf("%s-%s-%04d.mp4", s.man.Session, source, seg.n)
		seg.path, seg.typ, seg.sps, seg.pps = filepath.Join(s.man.Dir, seg.name), "video/mp4", tr.sps, tr.pps
		seg.mux, seg.tracks, err = openMP4(seg.path, tr.sps, tr.pps, tr.spsInfo, withAudio, &s.r.bytes)
	} else {
		seg.name = fmt.Sprintf("%s-%s-%04d.webm", s.man.Session, source, seg.n)
		seg.path, seg.typ = filepath.Join(s.man.Dir, seg.name), "video/webm"
		seg.mux, seg.tracks, err = openWebM(seg.path, tr.width, tr.height, withAudio, &s.r.bytes)
	}
	if err != nil {
		s.fail(err)
		return nil
	}
	tr.lastMS, tr.segN = -1, seg.n
	s.segs[source] = seg
	return seg
}

// closeSegment finishes a file and adds it to the manifest.
func (s *student) closeSegment(seg *segment) bool {
	err := seg.mux.close()
	if err == nil {
		var sum string
		var n int64
		if sum, n, err = hashFile(seg.path); err == nil {
			end := seg.last
			if end.Before(seg.start) {
				end = seg.start
			}
			f := File{Name: seg.name, Source: seg.source, Type: seg.typ, SHA256: sum, Bytes: n,
				Start: seg.start.UTC(), End: end.UTC(), Tracks: seg.tracks}
			s.man.Files = append(s.man.Files, f)
			if err = s.r.writeManifest(&s.man); err == nil {
				s.r.upload(&s.man, f)
			}
		}
	}
	if err != nil {
		s.fail(err)
		return false
	}
	return true
}

// fail stops the session after a write error: disk full, say.
func (s *student) fail(err error) {
	if s.stopped != "" {
		return
	}
	s.stopped = "write_failed"
	s.r.failures.Add(1)
	s.log.Error("recording stopped: write failed; media keeps flowing", "err", err)
	s.r.cfg.Events(s.man.Room, EventStopped, s.man.Identity, map[string]any{
		"session": s.man.Session, "reason": "write_failed", "error": err.Error()})
}

// finish closes the open segments and the manifest, and stops the taps.
func (s *student) finish() {
	if s.stopped != "write_failed" {
		reason := s.stopped
		s.stopped = "" // the last held frames still go in
		for _, tr := range s.tracks {
			s.flushHeld(tr)
		}
		if s.stopped == "" {
			s.stopped = reason
		}
	}
	failed := s.stopped == "write_failed"
	s.stop(s.stopped)
	for _, source := range []string{"camera", "screen"} {
		if seg := s.segs[source]; seg != nil {
			delete(s.segs, source)
			if failed {
				seg.mux.close()
				continue
			}
			s.closeSegment(seg)
		}
	}
	failed = s.stopped == "write_failed"
	s.man.Ended, s.man.StopReason = time.Now().UTC(), s.stopped
	if err := s.r.writeManifest(&s.man); err != nil && !failed {
		s.fail(err)
		failed = true
	}
	// The manifest goes to the store last, after the files it lists; a
	// failed session's too: what was recorded is evidence.
	s.r.uploadManifest(&s.man)
	// Drop what is still queued; the taps' watchers see quit and stop.
	for {
		select {
		case p := <-s.queue:
			packets.Put(p)
			continue
		default:
		}
		break
	}
	if !failed {
		s.r.cfg.Events(s.man.Room, EventStopped, s.man.Identity, map[string]any{
			"session": s.man.Session, "reason": s.stopped, "files": len(s.man.Files), "gaps": len(s.man.Gaps)})
	}
	s.log.Info("recording stopped", "session", s.man.Session, "reason", s.stopped, "files", len(s.man.Files))
}

// track is the writer's state for one tapped source.
type track struct {
	tap   *tap
	video bool
	h264  bool // else VP8, for video
	clock uint32
	sb    *samplebuilder.SampleBuilder

	// RTP time → wall time: the first sample's arrival anchors it.
	anchored bool
	anchor   time.Time
	lastTS   uint32
	ticks    int64 // RTP ticks since the anchor, unwrapped

	held      *heldFrame // the last video frame, written when the next comes
	lastMS    int64      // last block time written in the current segment, -1 before the first
	segN      int
	lastAt    time.Time
	needKey   bool
	keyAsked  time.Time
	gapSince  time.Time
	gapReason string
	width     int
	height    int
	// An H.264 stream's last parameter sets: the next file's avcC.
	sps, pps []byte
	spsInfo  spsInfo
}

// newTrack sets up the jitter buffer for a supported codec, nil else.
func newTrack(t *tap) *track {
	mime := strings.ToLower(t.src.Codec().MimeType)
	switch {
	case t.src.Kind() == sfu.KindVideo && mime == "video/vp8":
		return &track{tap: t, video: true, clock: 90000, needKey: true, width: 640, height: 360, lastMS: -1,
			sb: samplebuilder.New(256, &codecs.VP8Packet{}, 90000, samplebuilder.WithMaxTimeDelay(jitterDelay))}
	case t.src.Kind() == sfu.KindVideo && mime == "video/h264":
		return &track{tap: t, video: true, h264: true, clock: 90000, needKey: true, lastMS: -1,
			sb: samplebuilder.New(256, &codecs.H264Packet{IsAVC: true}, 90000, samplebuilder.WithMaxTimeDelay(jitterDelay))}
	case t.src.Kind() == sfu.KindAudio && mime == "audio/opus" && t.source == "microphone":
		return &track{tap: t, clock: 48000, lastMS: -1,
			sb: samplebuilder.New(64, &codecs.OpusPacket{}, 48000, samplebuilder.WithMaxTimeDelay(jitterDelay))}
	}
	return nil
}

// keyFrame reports whether a video frame can start a file: a VP8
// keyframe (the frame tag's P bit clear, RFC 6386 §9.1) or an H.264
// access unit with an IDR slice.
func (tr *track) keyFrame(frame []byte) bool {
	if tr.h264 {
		return h264KeyFrame(frame)
	}
	return len(frame) > 0 && frame[0]&0x01 == 0
}

// h264Frame takes an access unit's parameter sets into tr and returns
// the MP4 sample. An IDR with no parameter sets seen yet cannot start a
// file (its avcC would be empty): the frame is dropped and a keyframe
// asked for, which browsers send with SPS and PPS. ok is false when the
// frame is to be dropped.
func (s *student) h264Frame(tr *track, au []byte) (key bool, sample []byte, ok bool) {
	f, err := splitAVC(au)
	if err != nil {
		s.lost(tr, tr.lastAt, "packet_loss") // a frame the decoder cannot use: resume at a keyframe
		return false, nil, false
	}
	if len(f.sample) == 0 {
		return false, nil, false // parameter sets alone: kept, nothing to write
	}
	if f.sps != nil {
		if info, err := parseSPS(f.sps); err == nil {
			tr.sps, tr.spsInfo, tr.width, tr.height = bytes.Clone(f.sps), info, info.width, info.height
		} else {
			s.log.Debug("unreadable H.264 sequence parameter set", "err", err)
		}
	}
	if f.pps != nil {
		tr.pps = bytes.Clone(f.pps)
	}
	if f.key && (tr.sps == nil || tr.pps == nil) {
		if now := time.Now(); now.Sub(tr.keyAsked) > keyframeRetry {
			tr.keyAsked = now
			tr.tap.src.RequestKeyframe(s.r.cfg.Quality)
		}
		return false, nil, false
	}
	return f.key, f.sample, true
}

// wallTime maps an RTP timestamp to wall time on the track's anchor.
func (tr *track) wallTime(ts uint32, now time.Time) time.Time {
	if !tr.anchored {
		tr.anchored, tr.anchor, tr.lastTS = true, now, ts
	}
	tr.ticks += int64(int32(ts - tr.lastTS))
	tr.lastTS = ts
	return tr.anchor.Add(time.Duration(tr.ticks * int64(time.Second) / int64(tr.clock)))
}

// vp8Size reads a VP8 keyframe's width and height (RFC 6386 §9.1).
func vp8Size(frame []byte) (w, h int, ok bool) {
	if len(frame) < 10 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	w = int(frame[6]) | int(frame[7]&0x3f)<<8
	h = int(frame[8]) | int(frame[9]&0x3f)<<8
	return w, h, w > 0 && h > 0
}
