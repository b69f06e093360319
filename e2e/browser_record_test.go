package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// recordedFor is how long the student publishes while recorded.
const recordedFor = 10 * time.Second

// TestBrowserRecording: a browser student (fake camera and microphone)
// publishes for 10 s on a node started with --record; after it leaves,
// the admin listing has its signed manifest, and ffprobe reads the file
// as VP8 video with Opus audio lasting 10 s ± 1.5, which ffmpeg decodes
// to the end without an error.
func TestBrowserRecording(t *testing.T) {
	chromium := requireChromium(t)
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatal("ffprobe missing: scripts/install-test-deps.sh installs ffmpeg")
	}
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)

	data := os.Getenv("INVIGIL_KEEP_DATA")
	if data == "" {
		data = t.TempDir()
	}
	srv := startServer(t, ctx, bin, apiSecret, "--record", "--data-dir", data)
	studentToken := srv.token(t, ctx, room, "alice", "student", "Alice")
	adminToken := srv.token(t, ctx, "*", "api", "admin", "API")

	br := startBrowser(t, ctx, chromium)
	student := br.openTab(t, "student-recorded", srv.url("/student#token="+studentToken))
	deadline := time.Now().Add(mediaTimeout)
	for {
		frames, err := evaluate[int](student, `(async () => {
  const pc = window.invigilClient?.peerConnection; let n = 0;
  if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') n += s.framesEncoded ?? 0; });
  return n;
})()`)
		if err != nil {
			t.Fatal(err)
		}
		if frames > 0 {
			break
		}
		if time.Now().After(deadline) {
			saveDiagnostics(t, []*tab{student})
			t.Fatalf("the student encoded no video within %v", mediaTimeout)
		}
		time.Sleep(pollInterval)
	}
	time.Sleep(recordedFor)
	if _, err := evaluate[bool](student, `window.invigilClient.leave().then(() => true)`); err != nil {
		t.Fatalf("student leaving: %v", err)
	}

	var listing struct {
		Recordings []struct {
			Identity   string `json:"identity"`
			StopReason string `json:"stop_reason"`
			Files      []struct {
				Name   string `json:"name"`
				SHA256 string `json:"sha256"`
			} `json:"files"`
			Signature string `json:"signature"`
		} `json:"recordings"`
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url("/v1/rooms/"+room+"/recordings"), nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&listing)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("recordings listing: HTTP %d, %v", resp.StatusCode, err)
		}
		if len(listing.Recordings) == 1 && listing.Recordings[0].StopReason != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished recording listed within 10 s of leaving: %+v", listing)
		}
		time.Sleep(pollInterval)
	}
	m := listing.Recordings[0]
	if m.Identity != "alice" || len(m.Files) != 1 || m.Files[0].SHA256 == "" || m.Signature == "" {
		t.Fatalf("manifest %+v", m)
	}

	path := filepath.Join(data, "recordings", room, "alice", m.Files[0].Name)
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
			CodecName string `json:"codec_name"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	var video, audio bool
	for _, s := range p.Streams {
		video = video || (s.CodecType == "video" && s.CodecName == "vp8")
		audio = audio || (s.CodecType == "audio" && s.CodecName == "opus")
	}
	if !video || !audio {
		t.Errorf("ffprobe streams %+v: want VP8 video and Opus audio", p.Streams)
	}
	d, _ := strconv.ParseFloat(p.Format.Duration, 64)
	if d < recordedFor.Seconds()-1.5 || d > recordedFor.Seconds()+1.5 {
		t.Errorf("duration %q s, want %v ± 1.5 s", p.Format.Duration, recordedFor.Seconds())
	}
	// A browser's frame timing varies; -fps_mode passthrough keeps the
	// null muxer from forcing a constant rate (and complaining of equal
	// rounded timestamps), so only decoding can print an error here.
	if out, err := exec.CommandContext(ctx, "ffmpeg", "-v", "error", "-i", path, "-fps_mode", "passthrough", "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("decoding the recording: %v\n%s", err, out)
	}
	t.Logf("recorded %s: %s s, streams %+v", m.Files[0].Name, p.Format.Duration, p.Streams)
}
