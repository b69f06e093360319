package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/invigil/invigil/sfu"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "record-media-")
	if err != nil {
		panic(err)
	}
	mediaDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

var (
	mediaDir  string
	mediaOnce sync.Once
	mediaErr  error
)

// testMedia makes, once, 12 s of real VP8 (640×360, 30 fps, a keyframe each
// second) and Opus (20 ms frames) with ffmpeg, so what the recorder
// writes is checked against encoders and decoders it does not share.
func testMedia(t *testing.T) (ivf, ogg string) {
	t.Helper()
	ivf, ogg = filepath.Join(mediaDir, "v.ivf"), filepath.Join(mediaDir, "a.ogg")
	mediaOnce.Do(func() {
		for _, args := range [][]string{
			{"-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-t", "12", "-c:v", "libvpx", "-b:v", "500k", "-g", "30", "-deadline", "realtime", "-y", ivf},
			{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "12", "-ac", "2", "-c:a", "libopus", "-b:a", "32k", "-frame_duration", "20",
				"-page_duration", "20000", "-y", ogg}, // one Opus packet a page: the feed sends a page as a packet
		} {
			if out, err := exec.Command("ffmpeg", append([]string{"-v", "error"}, args...)...).CombinedOutput(); err != nil {
				mediaErr = errors.New(string(out) + err.Error())
				return
			}
		}
	})
	if mediaErr != nil {
		t.Fatalf("ffmpeg (scripts/install-test-deps.sh installs it): %v", mediaErr)
	}
	return ivf, ogg
}

// source stands in for an sfu.Track: the test writes its packets.
type source struct {
	kind     sfu.Kind
	mime     string
	what     string
	w        atomic.Pointer[sfu.RTPWriter]
	keyAsked atomic.Int32
	done     chan struct{}
	// onKeyframe, when set before recording, also runs on each request.
	onKeyframe func()
}

func newSource(kind sfu.Kind, mime, what string) *source {
	return &source{kind: kind, mime: mime, what: what, done: make(chan struct{})}
}

func (s *source) ID() string     { return "TR_" + s.what }
func (s *source) Kind() sfu.Kind { return s.kind }
func (s *source) Codec() sfu.Codec {
	return sfu.Codec{MimeType: s.mime}
}
func (s *source) Source() string { return s.what }
func (s *source) RequestKeyframe(int) {
	s.keyAsked.Add(1)
	if s.onKeyframe != nil {
		s.onKeyframe()
	}
}
func (s *source) Done() <-chan struct{} { return s.done }
func (s *source) Tap(w sfu.RTPWriter, _ int) func() {
	s.w.Store(&w)
	return func() { s.w.Store(nil) }
}

func (s *source) write(t *testing.T, p *rtp.Packet) {
	if w := s.w.Load(); w != nil {
		if _, err := (*w).WriteRTP(&p.Header, p.Payload); err != nil {
			t.Fatal(err)
		}
	}
}

// feed plays the VP8 and Opus files into the sources as RTP, in
// timestamp order and faster than real time (the recorder times frames
// by their RTP timestamps), dropping a share of video packets. pace runs
// after each video frame: keepUp(r) holds the feed while r's writer is
// behind, so the only losses are the ones the test makes.
func feed(t *testing.T, cam, mic *source, seconds float64, dropVideo float64, pace func()) {
	t.Helper()
	ivfPath, _ := testMedia(t)
	vf, _ := os.Open(ivfPath)
	defer vf.Close()
	ivf, _, err := ivfreader.NewWith(vf)
	if err != nil {
		t.Fatal(err)
	}
	next := func() []byte {
		frame, _, err := ivf.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return frame
	}
	feedVideo(t, cam, mic, seconds, dropVideo, next, &codecs.VP8Payloader{EnablePictureID: true}, pace)
}

// feedVideo plays 30 fps video frames from next (nil at the end),
// packetized by pay, and the Opus file into the sources; pace runs after
// each frame.
func feedVideo(t *testing.T, cam, mic *source, seconds, dropVideo float64, next func() []byte, pay rtp.Payloader, pace func()) {
	t.Helper()
	_, oggPath := testMedia(t)
	af, _ := os.Open(oggPath)
	defer af.Close()
	ogg, _, err := oggreader.NewWith(af)
	if err != nil {
		t.Fatal(err)
	}
	vp := rtp.NewPacketizer(1200, 96, 1111, pay, rtp.NewRandomSequencer(), 90000)
	ap := rtp.NewPacketizer(1200, 111, 2222, &codecs.OpusPayloader{}, rtp.NewRandomSequencer(), 48000)
	rng := rand.New(rand.NewPCG(7, 9))
	var videoAt, audioAt float64
	for videoAt < seconds {
		if mic != nil && audioAt <= videoAt {
			page, _, err := ogg.ParseNextPage()
			if errors.Is(err, io.EOF) {
				mic = nil
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 0 && !bytes.HasPrefix(page, []byte("OpusHead")) && !bytes.HasPrefix(page, []byte("OpusTags")) {
				for _, p := range ap.Packetize(page, 960) {
					mic.write(t, p)
				}
				audioAt += 0.020
			}
			continue
		}
		frame := next()
		if frame == nil {
			break
		}
		for _, p := range vp.Packetize(frame, 3000) {
			if dropVideo > 0 && rng.Float64() < dropVideo {
				continue
			}
			cam.write(t, p)
		}
		videoAt += 1.0 / 30
		pace()
	}
}

// keepUp returns a pace for feed that waits while r's writers hold more
// than a quarter of their bounded queue: faster than real time, a feed
// on a loaded machine otherwise overruns the queue, and the packets it
// drops (keyframes among them) are losses the test did not make.
func keepUp(t *testing.T, r *Recorder) func() {
	return func() {
		deadline := time.Now().Add(sessionEndBound)
		for r.Stats().Queued > queuePackets/4 {
			if time.Now().After(deadline) {
				t.Fatalf("the writer did not drain its queue within %s", sessionEndBound)
			}
			time.Sleep(time.Millisecond) // polling the queue's depth
		}
	}
}

// events collects what the recorder reports, with sequence numbers.
type events struct {
	mu   sync.Mutex
	list []map[string]any
	// stopped is told of each recording_stopped, without blocking the
	// recorder (waitManifest reads the manifest again on each).
	stopped chan struct{}
}

func (e *events) sink(room, kind, subject string, details map[string]any) int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, map[string]any{"room": room, "kind": kind, "subject": subject, "details": details})
	if kind == EventStopped {
		select {
		case e.stopped <- struct{}{}:
		default:
		}
	}
	return int64(len(e.list))
}

func (e *events) kinds() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.list {
		out = append(out, ev["kind"].(string))
	}
	return out
}

// testSigner signs the tests' manifests; testTrust trusts only it.
var (
	testSigner = NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	testTrust  = Trust{Keys: testSigner.PublicKeys()}
)

// testLogger logs to the test.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newRecorder(t *testing.T, dir string, segment time.Duration) (*Recorder, *events) {
	t.Helper()
	return newRecorderWith(t, Config{Dir: dir, Segment: segment})
}

// newRecorderWith fills in what every test's Recorder has.
func newRecorderWith(t *testing.T, cfg Config) (*Recorder, *events) {
	t.Helper()
	ev := &events{stopped: make(chan struct{}, 1)}
	cfg.Signer, cfg.Quality, cfg.NodeID, cfg.Events, cfg.Logger = testSigner, 2, "n1", ev.sink, testLogger(t)
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, ev
}

// sessionEndBound only guards against a writer that never finishes: how
// fast it finishes depends on the CPU the test gets, and on a loaded
// machine (other test binaries, browsers) a ten-second feed has taken
// the writer well over 15 s.
const sessionEndBound = 3 * time.Minute

// waitManifest waits for the student's session to end, told by its
// recording_stopped event, and returns its manifest.
func waitManifest(t *testing.T, r *Recorder, ev *events, room string) *Manifest {
	t.Helper()
	hang := time.After(sessionEndBound)
	for {
		ms, err := r.List(t.Context(), room)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 && !ms[0].Ended.IsZero() {
			return ms[0]
		}
		select {
		case <-ev.stopped:
		case <-hang:
			t.Fatalf("the recording did not finish within %s", sessionEndBound)
		}
	}
}

type probe struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		Duration  string `json:"duration"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// audioPackets counts the audio packets ffprobe reads in a file.
func audioPackets(t *testing.T, path string) int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "a", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

// decodeErrors decodes the whole file and returns what ffmpeg complains of.
func decodeErrors(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg could not decode %s: %v\n%s", path, err, out)
	}
	return string(out)
}

// TestRecordsPlayableWebM: 10 s of camera and microphone become one WebM
// file that ffprobe reads as VP8 640×360 with Opus, 10 s long, decoding
// without an error, listed with its SHA-256 in a signed manifest.
func TestRecordsPlayableWebM(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	mic := newSource(sfu.KindAudio, "audio/opus", "microphone")
	r.Record("exam-1", "alice", mic)
	r.Record("exam-1", "alice", cam)
	feed(t, cam, mic, 10, 0, keepUp(t, r))
	close(cam.done)
	close(mic.done)
	m := waitManifest(t, r, ev, "exam-1")

	if len(m.Files) != 1 || m.StopReason != "tracks_ended" || m.Identity != "alice" || m.Node != "n1" {
		t.Fatalf("manifest %+v", m)
	}
	if err := Verify(m, testTrust, m.Dir); err != nil {
		t.Fatal(err)
	}
	p := ffprobe(t, filepath.Join(m.Dir, m.Files[0].Name))
	var video, audio bool
	for _, s := range p.Streams {
		video = video || (s.CodecType == "video" && s.CodecName == "vp8" && s.Width == 640 && s.Height == 360)
		audio = audio || (s.CodecType == "audio" && s.CodecName == "opus")
	}
	if n := audioPackets(t, filepath.Join(m.Dir, m.Files[0].Name)); n < 450 {
		t.Errorf("%d Opus packets, want ~500 (10 s of 20 ms)", n)
	}
	if !video || !audio {
		t.Errorf("streams %+v: want VP8 640×360 and Opus", p.Streams)
	}
	if d, _ := strconv.ParseFloat(p.Format.Duration, 64); d < 8.5 || d > 11.5 {
		t.Errorf("duration %q, want 10 s ± 1.5", p.Format.Duration)
	}
	if errs := decodeErrors(t, filepath.Join(m.Dir, m.Files[0].Name)); errs != "" {
		t.Errorf("decoding reported errors:\n%s", errs)
	}
	if got := ev.kinds(); len(got) != 2 || got[0] != EventStarted || got[1] != EventStopped {
		t.Errorf("events %v, want recording_started, recording_stopped", got)
	}
	if st := r.Stats(); st.Bytes == 0 || st.Active != 0 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestRecordingSurvivesLoss: with 5% of video packets lost and never
// retransmitted, every file still decodes to the end without an error:
// video resumes at the next keyframe (which the recorder asks for), and
// each gap is in the manifest with its audit event's sequence number.
func TestRecordingSurvivesLoss(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), 4*time.Second)
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-2", "bob", cam)
	feed(t, cam, nil, 10, 0.05, keepUp(t, r))
	close(cam.done)
	m := waitManifest(t, r, ev, "exam-2")

	if len(m.Files) < 2 {
		t.Fatalf("%d files with 4 s segments over 10 s", len(m.Files))
	}
	for _, f := range m.Files {
		if errs := decodeErrors(t, filepath.Join(m.Dir, f.Name)); errs != "" {
			t.Errorf("%s: decoding reported errors:\n%s", f.Name, errs)
		}
	}
	if len(m.Gaps) == 0 {
		t.Fatal("5% loss left no gap in the manifest")
	}
	kinds := ev.kinds()
	for _, g := range m.Gaps {
		if g.Reason != "packet_loss" || g.EventSeq == 0 || kinds[g.EventSeq-1] != EventGap || !g.To.After(g.From) {
			t.Errorf("gap %+v (event %d of %v)", g, g.EventSeq, kinds)
		}
	}
	if cam.keyAsked.Load() < 2 {
		t.Errorf("keyframes asked %d times: at start and after loss, want ≥ 2", cam.keyAsked.Load())
	}
	if err := Verify(m, testTrust, m.Dir); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyFindsAlterations: a changed byte in a file or a changed field
// in the manifest fails verification.
func TestVerifyFindsAlterations(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-3", "carol", cam)
	feed(t, cam, nil, 3, 0, keepUp(t, r))
	close(cam.done)
	m := waitManifest(t, r, ev, "exam-3")
	if err := Verify(m, testTrust, m.Dir); err != nil {
		t.Fatal(err)
	}
	other := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize)), time.Now())
	if err := Verify(m, Trust{Keys: other.PublicKeys()}, ""); !errors.Is(err, ErrUntrusted) {
		t.Errorf("a key not trusted: %v", err)
	}
	edited := *m
	edited.Gaps = append([]Gap(nil), Gap{Source: "camera", Reason: "stall"})
	if err := Verify(&edited, testTrust, ""); !errors.Is(err, ErrTampered) {
		t.Errorf("edited manifest: %v", err)
	}
	path := filepath.Join(m.Dir, m.Files[0].Name)
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0xff
	os.WriteFile(path, b, 0o640)
	if err := Verify(m, testTrust, m.Dir); !errors.Is(err, ErrTampered) {
		t.Errorf("altered file: %v", err)
	}
}

// TestDiskFullStopsRecording: on a 300 KiB filesystem the recording stops
// with a write_failed event and a failure count, while the tap keeps
// taking packets without blocking (media flows on).
func TestDiskFullStopsRecording(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	r, ev := newRecorder(t, dir, time.Hour)
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-4", "dave", cam)
	testMedia(t) // made before the clock starts: encoding it takes seconds
	start := time.Now()
	// ~625 KB of video into 300 KiB, at a fixed pace that does not wait
	// for the writer: the tap must not block whatever the writer does.
	feed(t, cam, nil, 10, 0, func() { time.Sleep(time.Millisecond) })
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("feeding took %v: the tap blocked on a full disk", took)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Failures == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := r.Stats(); st.Failures != 1 {
		t.Fatalf("stats %+v: want one failed recording", st)
	}
	var stopped map[string]any
	ev.mu.Lock()
	for _, e := range ev.list {
		if e["kind"] == EventStopped {
			stopped = e["details"].(map[string]any)
		}
	}
	ev.mu.Unlock()
	if stopped == nil || stopped["reason"] != "write_failed" {
		t.Errorf("recording_stopped details %v, want reason write_failed", stopped)
	}
	close(cam.done)
}

// TestPruneDeletesExpired: retention removes a finished session's files
// and manifest with an event, and leaves a recent one.
func TestPruneDeletesExpired(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-5", "erin", cam)
	feed(t, cam, nil, 2, 0, keepUp(t, r))
	close(cam.done)
	m := waitManifest(t, r, ev, "exam-5")
	if n, err := r.Prune(t.Context(), time.Now(), 24*time.Hour); n != 0 || err != nil {
		t.Fatalf("a fresh recording was pruned: %d, %v", n, err)
	}
	if n, err := r.Prune(t.Context(), time.Now().Add(25*time.Hour), 24*time.Hour); n != 1 || err != nil {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(m.Dir, m.Files[0].Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file still there: %v", err)
	}
	if ms, _ := r.List(t.Context(), "exam-5"); len(ms) != 0 {
		t.Errorf("%d manifests left", len(ms))
	}
	if k := ev.kinds(); k[len(k)-1] != EventDeleted {
		t.Errorf("events %v: want recording_deleted last", k)
	}
}

// TestTapAllocatesNothing: what the forwarding path pays for a recorded
// track, copying the packet into a pooled buffer and queueing it, does
// not allocate in steady state.
func TestTapAllocatesNothing(t *testing.T) {
	st := &student{r: &Recorder{}, queue: make(chan *packet, 1)}
	tp := &tap{st: st}
	h := &rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 1, Timestamp: 3000, SSRC: 5}
	payload := make([]byte, 1100)
	write := func() {
		if _, err := tp.WriteRTP(h, payload); err != nil {
			t.Fatal(err)
		}
		packets.Put(<-st.queue) // the writer's part
	}
	write()
	if allocs := testing.AllocsPerRun(1000, write); allocs > 0.01 {
		t.Errorf("a tapped packet allocates %.2f times", allocs)
	}
	// A full queue drops and counts, never blocks.
	tp.WriteRTP(h, payload)
	tp.WriteRTP(h, payload)
	if tp.dropped.Load() != 1 {
		t.Errorf("dropped %d with a full queue, want 1", tp.dropped.Load())
	}
	packets.Put(<-st.queue)
}

// TestLayerSwitchKeepsOneFramePerInstant: when the tap moves to another
// simulcast layer, the new layer's keyframe shows the instant the old
// layer's last frame showed, a couple of RTP ticks later. The file keeps
// one frame per instant (the keyframe), so no two video blocks are a
// millisecond apart and a muxer at the frame rate sees no equal
// timestamps.
func TestLayerSwitchKeepsOneFramePerInstant(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	cam := newSource(sfu.KindVideo, "video/VP8", "camera")
	r.Record("exam-1", "alice", cam)
	ivfPath, _ := testMedia(t)
	vf, _ := os.Open(ivfPath)
	defer vf.Close()
	ivf, _, err := ivfreader.NewWith(vf)
	if err != nil {
		t.Fatal(err)
	}
	vp := rtp.NewPacketizer(1200, 96, 1111, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	const frames, switchAt = 90, 30 // frame 30 is a keyframe (one a second)
	for i := range frames {
		frame, _, err := ivf.ParseNextFrame()
		if err != nil {
			t.Fatal(err)
		}
		if i == switchAt {
			// The old layer's frame of this instant, then the new layer's
			// keyframe 90 ticks (1 ms) on.
			for _, p := range vp.Packetize(frame, 90) {
				cam.write(t, p)
			}
			for _, p := range vp.Packetize(frame, 2910) {
				cam.write(t, p)
			}
		} else {
			for _, p := range vp.Packetize(frame, 3000) {
				cam.write(t, p)
			}
		}
		keepUp(t, r)()
	}
	close(cam.done)
	m := waitManifest(t, r, ev, "exam-1")
	path := filepath.Join(m.Dir, m.Files[0].Name)
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var times []float64
	for _, line := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(line, 64)
		if err != nil {
			t.Fatalf("ffprobe packet time %q", line)
		}
		times = append(times, v)
	}
	if len(times) != frames {
		t.Errorf("%d video blocks for %d captured instants", len(times), frames)
	}
	for i := 1; i < len(times); i++ {
		if times[i]-times[i-1] < 0.005 {
			t.Fatalf("blocks %d and %d are %.3f s apart: one instant written twice", i-1, i, times[i]-times[i-1])
		}
	}
	if errs, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-fps_mode", "passthrough", "-enc_time_base", "-1", "-f", "null", "-").CombinedOutput(); err != nil || len(errs) > 0 {
		t.Errorf("decoding at the frame rate: %v\n%s", err, errs)
	}
}
