package record

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/at-wat/ebml-go/mkvcore"
	"github.com/at-wat/ebml-go/webm"
)

// cuesReserve is the space kept at the front of each file for its seek
// index: ~700 cue points, a keyframe every 1–3 s for 10-minute segments.
const cuesReserve = 16 << 10

// segment is one file being written: a video track and, for the
// camera, the microphone.
type segment struct {
	source string // camera or screen
	n      int
	name   string
	path   string
	typ    string // video/webm or video/mp4
	mux    muxer
	audio  bool      // the microphone is in it
	start  time.Time // wall time of timestamp 0: the first keyframe
	last   time.Time // wall time of the last frame written
	tracks []TrackInfo
	// sps and pps describe an H.264 file's stream (its avcC): other
	// parameter sets start another file.
	sps, pps []byte
}

// muxer writes one segment's frames in a container: WebM for VP8,
// fragmented MP4 for H.264. Times are milliseconds from the segment's
// first video frame, strictly increasing per track. Write errors are
// kept, not returned: err says when the file failed.
type muxer interface {
	writeVideo(key bool, ms int64, frame []byte)
	writeAudio(ms int64, frame []byte)
	// close finishes the file and returns its first error.
	close() error
	err() error
}

// webmMuxer is a WebM file: a VP8 track and an optional Opus track.
type webmMuxer struct {
	f     *errFile
	video webm.BlockWriteCloser
	audio webm.BlockWriteCloser // nil without a microphone
}

func (w *webmMuxer) writeVideo(key bool, ms int64, frame []byte) { w.video.Write(key, ms, frame) }

func (w *webmMuxer) writeAudio(ms int64, frame []byte) {
	if w.audio != nil {
		w.audio.Write(true, ms, frame)
	}
}

// close finishes the file (cues, duration) and returns its first error.
func (w *webmMuxer) close() error {
	// The muxer closes the file when its last track writer closes.
	w.video.Close()
	if w.audio != nil {
		w.audio.Close()
	}
	return w.f.Err()
}

func (w *webmMuxer) err() error { return w.f.Err() }

// errFile is the file under a segment. The muxer writes each EBML
// element separately, so writes are buffered (one syscall per 64 KiB, not
// per element). It remembers the first write error and from then on
// discards what the muxer writes, reporting success: the muxer (whose
// goroutines stall on an error it is told of) runs to its end, and the
// segment's owner reads Err instead. It also counts bytes.
type errFile struct {
	file  *os.File
	buf   *bufio.Writer
	bytes *atomic.Uint64
	mu    sync.Mutex
	err   error
}

func newErrFile(f *os.File, bytes *atomic.Uint64) *errFile {
	return &errFile{file: f, buf: bufio.NewWriterSize(f, 64<<10), bytes: bytes}
}

func (f *errFile) Write(b []byte) (int, error) {
	if f.Err() != nil {
		return len(b), nil
	}
	n, err := f.buf.Write(b)
	f.bytes.Add(uint64(n))
	if err != nil {
		f.fail(err)
	}
	return len(b), nil
}

// WriteAt patches what was written before (the seek index, the
// duration): the buffer goes out first.
func (f *errFile) WriteAt(b []byte, off int64) (int, error) {
	if f.Err() != nil {
		return len(b), nil
	}
	if err := f.buf.Flush(); err != nil {
		f.fail(err)
		return len(b), nil
	}
	if _, err := f.file.WriteAt(b, off); err != nil {
		f.fail(err)
	}
	return len(b), nil
}

func (f *errFile) Close() error {
	if f.Err() == nil {
		if err := f.buf.Flush(); err != nil {
			f.fail(err)
		} else if err := f.file.Sync(); err != nil {
			f.fail(err)
		}
	}
	if err := f.file.Close(); err != nil {
		f.fail(err)
	}
	return nil
}

func (f *errFile) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

// Err is the first error the file saw.
func (f *errFile) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// openWebM creates path with a VP8 video track of the given size and,
// when withAudio, an Opus track.
func openWebM(path string, width, height int, withAudio bool, bytes *atomic.Uint64) (*webmMuxer, []TrackInfo, error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, nil, err
	}
	f := newErrFile(file, bytes)
	tracks := []webm.TrackEntry{{
		Name: "video", TrackNumber: 1, TrackUID: 1, CodecID: "V_VP8", TrackType: 1,
		Video: &webm.Video{PixelWidth: uint64(width), PixelHeight: uint64(height)},
	}}
	info := []TrackInfo{{Kind: "video", Codec: "VP8", ClockRate: 90000, Width: width, Height: height}}
	if withAudio {
		tracks = append(tracks, webm.TrackEntry{
			Name: "audio", TrackNumber: 2, TrackUID: 2, CodecID: "A_OPUS", TrackType: 2,
			CodecPrivate: opusHead(), CodecDelay: opusPreSkip * uint64(time.Second) / 48000, SeekPreRoll: 80_000_000,
			Audio: &webm.Audio{SamplingFrequency: 48000, Channels: 2},
		})
		info = append(info, TrackInfo{Kind: "audio", Codec: "Opus", ClockRate: 48000, Channels: 2})
	}
	// A segment info of this file's own: with cues on, the writer sets
	// the duration in the info it was given, and ebml-go's default is a
	// package variable every file would share (a data race, and one
	// file's duration in another's header).
	segInfo := *webm.DefaultSegmentInfo
	ws, err := webm.NewSimpleBlockWriter(f, tracks, mkvcore.WithSegmentInfo(&segInfo),
		mkvcore.WithSeekHead(true), mkvcore.WithCues(cuesReserve),
		mkvcore.WithOnErrorHandler(f.fail), mkvcore.WithOnFatalHandler(f.fail))
	if err != nil {
		file.Close()
		os.Remove(path)
		return nil, nil, fmt.Errorf("webm: %w", err)
	}
	w := &webmMuxer{f: f, video: ws[0]}
	if withAudio {
		w.audio = ws[1]
	}
	return w, info, nil
}

// opusPreSkip is the pre-skip a browser's Opus encoder declares (3.25 ms
// at 48 kHz: RFC 7845 §4.2's recommendation).
const opusPreSkip = 312

// opusHead is the Opus identification header WebM keeps as the track's
// CodecPrivate (RFC 7845 §5.1): stereo, 48 kHz, mapping family 0.
func opusHead() []byte {
	b := make([]byte, 19)
	copy(b, "OpusHead")
	b[8] = 1 // version
	b[9] = 2 // channels
	binary.LittleEndian.PutUint16(b[10:], opusPreSkip)
	binary.LittleEndian.PutUint32(b[12:], 48000)
	return b
}
