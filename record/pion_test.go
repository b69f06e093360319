package record

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/sfu"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
)

// TestPionStudentH264: a pion student publishes the libx264 file and
// Opus as a browser would, through pion's own packetizers over a real
// DTLS-SRTP connection on loopback, paced in real time; what arrives at
// the other peer is recorded into one MP4 that ffprobe reads as H.264
// 640×360 with Opus lasting as long as was sent, and that decodes
// without a word from ffmpeg.
func TestPionStudentH264(t *testing.T) {
	const seconds = 6
	r, ev := newRecorder(t, t.TempDir(), time.Hour)
	api := testclient.NewPionAPI(t)
	pub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup // the peers' readers
	defer wg.Wait()
	defer sub.Close()
	defer pub.Close()

	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, "camera", "student")
	if err != nil {
		t.Fatal(err)
	}
	audio, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "student")
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []webrtc.TrackLocal{video, audio} {
		sender, err := pub.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { // drain RTCP, as a publisher must
			defer wg.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}

	// The receiving peer hands each track to the recorder as the SFU's
	// tap would: every RTP packet, and PLIs back to the publisher.
	sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		kind, what := sfu.KindAudio, "microphone"
		if tr.Kind() == webrtc.RTPCodecTypeVideo {
			kind, what = sfu.KindVideo, "camera"
		}
		src := newSource(kind, tr.Codec().MimeType, what)
		src.onKeyframe = func() {
			sub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(tr.SSRC())}})
		}
		r.Record("exam-p", "olu", src)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(src.done)
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				if w := src.w.Load(); w != nil {
					(*w).WriteRTP(&p.Header, p.Payload)
				}
			}
		}()
	})

	connected := make(chan struct{})
	var once sync.Once
	pub.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			once.Do(func() { close(connected) })
		}
	})
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pub)
	pub.SetLocalDescription(offer)
	<-gathered
	if err := sub.SetRemoteDescription(*pub.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := sub.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(sub)
	sub.SetLocalDescription(answer)
	<-gathered
	if err := pub.SetRemoteDescription(*sub.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("the peers did not connect within 10 s")
	}

	// Send in real time: a frame every 1/30 s, an Opus packet every 20 ms.
	next := h264Frames(t)
	_, oggPath := testMedia(t)
	af, _ := os.Open(oggPath)
	defer af.Close()
	ogg, _, err := oggreader.NewWith(af)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var sentVideo, sentAudio time.Duration
	const frame, packet = time.Second / 30, 20 * time.Millisecond
	for sentVideo < seconds*time.Second {
		if sentAudio <= sentVideo {
			page, _, err := ogg.ParseNextPage()
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if len(page) > 0 && !bytes.HasPrefix(page, []byte("OpusHead")) && !bytes.HasPrefix(page, []byte("OpusTags")) {
				if err := audio.WriteSample(media.Sample{Data: page, Duration: packet}); err != nil {
					t.Fatal(err)
				}
				sentAudio += packet
			}
			if err == nil {
				continue
			}
			sentAudio = seconds * time.Second // no more audio
		}
		au := next()
		if au == nil {
			break
		}
		if err := video.WriteSample(media.Sample{Data: au, Duration: frame}); err != nil {
			t.Fatal(err)
		}
		sentVideo += frame
		time.Sleep(time.Until(start.Add(sentVideo)))
	}
	time.Sleep(200 * time.Millisecond) // the last packets' way over loopback
	pub.Close()
	sub.Close() // ends the remote tracks: the recording finishes
	m := waitManifest(t, r, ev, "exam-p")

	if len(m.Files) != 1 || !strings.HasSuffix(m.Files[0].Name, ".mp4") {
		t.Fatalf("manifest %+v", m)
	}
	if err := Verify(m, testTrust, m.Dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(m.Dir, m.Files[0].Name)
	p := ffprobeMP4Seconds(t, path, seconds-1)
	if !p.video || !p.audio || !p.firstKey || p.duration < seconds-1 || p.duration > seconds+1 {
		t.Errorf("ffprobe: %+v; want H.264 640×360 from a keyframe and Opus, %d s ± 1", p, seconds)
	}
	t.Logf("recorded %s: %d bytes, ffprobe %+v", m.Files[0].Name, m.Files[0].Bytes, p)
	if errs := decodeErrors(t, path); errs != "" {
		t.Errorf("decoding reported errors:\n%s", errs)
	}
}
