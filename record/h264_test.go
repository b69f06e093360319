package record

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/sfu"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
)

var (
	h264Once sync.Once
	h264Err  error
)

// testH264 makes, once, 12 s of real H.264 with ffmpeg's libx264:
// constrained baseline as browsers send it (no B-frames), 640×360 (23
// macroblock rows cropped by 8 lines, which the SPS parser must get
// right), 30 fps, an IDR each second with SPS and PPS before it.
func testH264(t *testing.T) string {
	t.Helper()
	path := filepath.Join(mediaDir, "v.h264")
	h264Once.Do(func() {
		out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-t", "12",
			"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-g", "30", "-bf", "0",
			"-x264-params", "repeat-headers=1", "-b:v", "500k", "-f", "h264", "-y", path).CombinedOutput()
		if err != nil {
			h264Err = errors.New(string(out) + err.Error())
		}
	})
	if h264Err != nil {
		t.Fatalf("ffmpeg (scripts/install-test-deps.sh installs it): %v", h264Err)
	}
	return path
}

// h264Frames returns a reader of the test file's access units in Annex B
// form, for pion's H264Payloader: the NAL units up to each slice (one
// slice a frame from x264).
func h264Frames(t *testing.T) func() []byte {
	t.Helper()
	f, err := os.Open(testH264(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return func() []byte {
		var au []byte
		for {
			nal, err := r.NextNAL()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				t.Fatal(err)
			}
			au = append(au, 0, 0, 0, 1)
			au = append(au, nal.Data...)
			if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
				return au
			}
		}
	}
}

// feedH264 plays the H.264 file, packetized by pion's payloader (single
// NAL units, STAP-A for SPS+PPS, FU-A above the MTU: RFC 6184), and the
// Opus file into the sources.
func feedH264(t *testing.T, cam, mic *source, seconds, dropVideo float64) {
	t.Helper()
	feedVideo(t, cam, mic, seconds, dropVideo, h264Frames(t), &codecs.H264Payloader{}, func() {})
}

// probeMP4 is what ffprobe says of a recorded MP4.
type probeMP4 struct {
	video, audio bool // audio: enough Opus
	duration     float64
	firstKey     bool
}

func ffprobeMP4(t *testing.T, path string) probeMP4 {
	t.Helper()
	return ffprobeMP4Seconds(t, path, 9)
}

// ffprobeMP4Seconds is ffprobeMP4 wanting audio over minAudio seconds.
func ffprobeMP4Seconds(t *testing.T, path string, minAudio float64) probeMP4 {
	t.Helper()
	p := ffprobe(t, path)
	var r probeMP4
	for _, s := range p.Streams {
		r.video = r.video || (s.CodecType == "video" && s.CodecName == "h264" && s.Width == 640 && s.Height == 360)
		d, _ := strconv.ParseFloat(s.Duration, 64)
		r.audio = r.audio || (s.CodecType == "audio" && s.CodecName == "opus" && d > minAudio)
	}
	r.duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-read_intervals", "%+#1",
		"-show_entries", "packet=flags", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	r.firstKey = strings.HasPrefix(strings.TrimSpace(string(out)), "K")
	return r
}

// TestRecordsPlayableMP4: 10 s of an H.264 camera (real libx264 output,
// packetized by pion) and an Opus microphone become one fragmented MP4
// that ffprobe reads as H.264 640×360 with Opus, 10 s long, decoding
// without a word from ffmpeg, listed in a manifest that verifies.
func TestRecordsPlayableMP4(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	cam := newSource(sfu.KindVideo, "video/H264", "camera")
	mic := newSource(sfu.KindAudio, "audio/opus", "microphone")
	r.Record("exam-h1", "hana", mic)
	r.Record("exam-h1", "hana", cam)
	feedH264(t, cam, mic, 10, 0)
	close(cam.done)
	close(mic.done)
	m := waitManifest(t, r, ev, "exam-h1")

	if len(m.Files) != 1 || m.StopReason != "tracks_ended" {
		t.Fatalf("manifest %+v", m)
	}
	f := m.Files[0]
	if !strings.HasSuffix(f.Name, ".mp4") || f.Type != "video/mp4" || len(f.Tracks) != 2 ||
		f.Tracks[0].Codec != "H264" || f.Tracks[0].Width != 640 || f.Tracks[0].Height != 360 || f.Tracks[1].Codec != "Opus" {
		t.Errorf("file %+v", f)
	}
	if err := Verify(m, testTrust, m.Dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(m.Dir, f.Name)
	p := ffprobeMP4(t, path)
	if !p.video || !p.audio || !p.firstKey {
		t.Errorf("ffprobe: %+v; want H.264 640×360 starting on a keyframe, and 10 s of Opus", p)
	}
	if p.duration < 9 || p.duration > 11 {
		t.Errorf("duration %.2f s, want 10 ± 1", p.duration)
	}
	if errs := decodeErrors(t, path); errs != "" {
		t.Errorf("decoding reported errors:\n%s", errs)
	}
	if got := ev.kinds(); len(got) != 2 || got[0] != EventStarted || got[1] != EventStopped {
		t.Errorf("events %v, want recording_started, recording_stopped", got)
	}
}

// TestMP4SegmentsAndLoss: with 4 s segments and 5% of video packets lost
// and never retransmitted, every MP4 starts on a keyframe and decodes to
// its end without an error, the files together last the whole 10 s, and
// the gaps are in the manifest with their events, as for VP8.
func TestMP4SegmentsAndLoss(t *testing.T) {
	r, ev := newRecorder(t, t.TempDir(), 4*time.Second)
	cam := newSource(sfu.KindVideo, "video/H264", "camera")
	r.Record("exam-h2", "ian", cam)
	feedH264(t, cam, nil, 10, 0.05)
	close(cam.done)
	m := waitManifest(t, r, ev, "exam-h2")

	if len(m.Files) < 2 {
		t.Fatalf("%d files with 4 s segments over 10 s", len(m.Files))
	}
	total := 0.0
	for _, f := range m.Files {
		path := filepath.Join(m.Dir, f.Name)
		p := ffprobeMP4(t, path)
		if !p.video || !p.firstKey {
			t.Errorf("%s: %+v", f.Name, p)
		}
		total += p.duration
		if errs := decodeErrors(t, path); errs != "" {
			t.Errorf("%s: decoding reported errors:\n%s", f.Name, errs)
		}
	}
	if total < 8 || total > 11 {
		t.Errorf("the files last %.2f s together, want ~10 less the lost stretches", total)
	}
	if len(m.Gaps) == 0 {
		t.Fatal("5% loss left no gap in the manifest")
	}
	kinds := ev.kinds()
	for _, g := range m.Gaps {
		if g.Reason != "packet_loss" || g.EventSeq == 0 || kinds[g.EventSeq-1] != EventGap {
			t.Errorf("gap %+v", g)
		}
	}
	if err := Verify(m, testTrust, m.Dir); err != nil {
		t.Fatal(err)
	}
}

// TestParseSPS reads the size from libx264's SPS, 640×360 coded as 368
// lines cropped by 8, and refuses truncated ones.
func TestParseSPS(t *testing.T) {
	next := h264Frames(t)
	au := next()
	var sps []byte
	for _, nal := range bytes.Split(au, []byte{0, 0, 0, 1}) {
		if len(nal) > 0 && nal[0]&0x1f == nalSPS {
			sps = nal
		}
	}
	if sps == nil {
		t.Fatal("no SPS before the first frame")
	}
	info, err := parseSPS(sps)
	if err != nil || info.width != 640 || info.height != 360 || info.profile != 66 {
		t.Fatalf("parseSPS: %+v, %v; want baseline 640×360", info, err)
	}
	for n := 4; n < len(sps)-1; n++ {
		if _, err := parseSPS(sps[:n]); err == nil && n < 6 {
			t.Errorf("an SPS cut to %d bytes parsed", n)
		}
	}
}

// FuzzParseSPS: the SPS parser reads what a publisher sends; it must not
// crash on any input, and any size it returns is a plausible one.
func FuzzParseSPS(f *testing.F) {
	f.Add([]byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01})
	f.Add([]byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := parseSPS(b)
		if err == nil && (info.width <= 0 || info.height <= 0 || info.width > 16384 || info.height > 32768) {
			t.Fatalf("size %d×%d", info.width, info.height)
		}
	})
}

// FuzzSplitAVC: splitting a depacketized access unit never crashes and
// what it keeps is itself a well-formed access unit.
func FuzzSplitAVC(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0, 0, 0, 3, 0x65, 0x88, 0x84})
	f.Add([]byte{0, 0, 0, 9, 0x41})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := splitAVC(b)
		if err != nil {
			return
		}
		again, err := splitAVC(fr.sample)
		if err != nil || !bytes.Equal(again.sample, fr.sample) || again.key != fr.key {
			t.Fatalf("the sample does not split to itself: %v", err)
		}
	})
}
