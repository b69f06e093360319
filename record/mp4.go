package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// Fragmented MP4 (ISO/IEC 14496-12, "ISO BMFF") for H.264 students:
// ftyp, a moov that describes the tracks and holds no samples, then one
// moof+mdat pair per fragment as frames come, and at the end an mfra
// index of the fragments that start on a keyframe, so players seek. A
// crash loses at most the fragment being gathered: everything before it
// is a playable file. Video is 'avc1' with its parameter sets in 'avcC'
// (ISO/IEC 14496-15 §5.3); audio is Opus as "Encapsulation of Opus in
// ISO Base Media File Format" (Opus-in-ISOBMFF, 'Opus' with 'dOps')
// describes, which Chromium and Firefox play.

// Track IDs and time scales of the MP4 files.
const (
	mp4VideoTrack = 1
	mp4AudioTrack = 2
	mp4VideoScale = 90000 // the RTP clock
	mp4AudioScale = 48000 // Opus's
	mp4MovieScale = 1000  // mvhd and mehd, in milliseconds
)

const (
	// fragmentTarget is how long a fragment gathers frames before it is
	// written when no keyframe starts one earlier: what a crash can lose,
	// and the granularity of seeking between keyframes.
	fragmentTarget = 1000 // ms
	// fragmentMaxBytes bounds the frames a fragment holds in memory.
	fragmentMaxBytes = 2 << 20
)

// Sample flags (ISO/IEC 14496-12 §8.8.3.1): a sync sample depends on no
// other (sample_depends_on = 2); any other video sample depends on
// others and is not a sync sample (sample_depends_on = 1,
// sample_is_non_sync_sample = 1).
const (
	flagsSync    = 0x02000000
	flagsNonSync = 0x01010000
)

// mp4Sample is a frame waiting for its fragment: its duration is known
// when the next one comes.
type mp4Sample struct {
	ms   int64
	key  bool
	data []byte
}

// mp4Track gathers one track's samples for the next fragment.
type mp4Track struct {
	id      uint32
	scale   int64 // ticks per millisecond ×1000: 90000 or 48000
	pending []mp4Sample
	lastDur uint32 // the previous sample's duration, for the last one
}

// mp4Muxer writes one fragmented MP4 file.
type mp4Muxer struct {
	f       *errFile
	off     int64 // bytes written so far
	seq     uint32
	video   *mp4Track
	audio   *mp4Track // nil without a microphone
	bytes   int       // sample bytes pending
	fragMS  int64     // the pending fragment's first video time
	lastMS  int64     // the last time of any sample written
	index   []tfraEntry
	durOffs []int64 // where the movie duration goes, patched on close
	closed  bool
}

type tfraEntry struct {
	time uint64 // video ticks
	moof int64  // the fragment's moof offset
}

// openMP4 creates path with an H.264 track described by sps and pps and,
// when withAudio, an Opus track.
func openMP4(path string, sps, pps []byte, info spsInfo, withAudio bool, bytes *atomic.Uint64) (*mp4Muxer, []TrackInfo, error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o640)
	if err != nil {
		return nil, nil, err
	}
	m := &mp4Muxer{f: newErrFile(file, bytes), fragMS: -1,
		video: &mp4Track{id: mp4VideoTrack, scale: mp4VideoScale}}
	tracks := []TrackInfo{{Kind: "video", Codec: "H264", ClockRate: 90000, Width: info.width, Height: info.height}}
	if withAudio {
		m.audio = &mp4Track{id: mp4AudioTrack, scale: mp4AudioScale}
		tracks = append(tracks, TrackInfo{Kind: "audio", Codec: "Opus", ClockRate: 48000, Channels: 2})
	}
	// ftyp (§4.3): iso6 for fragments with tfdt, avc1 for the brand of
	// H.264 files, mp41 for older readers.
	head := appendBox(nil, "ftyp", func(b []byte) []byte {
		b = append(b, "isom"...)
		b = binary.BigEndian.AppendUint32(b, 0x200)
		for _, brand := range []string{"iso6", "isom", "avc1", "mp41"} {
			b = append(b, brand...)
		}
		return b
	})
	head = m.appendMoov(head, sps, pps, info)
	m.write(head)
	if err := m.f.Err(); err != nil {
		file.Close()
		os.Remove(path)
		return nil, nil, err
	}
	return m, tracks, nil
}

func (m *mp4Muxer) write(b []byte) {
	m.f.Write(b)
	m.off += int64(len(b))
}

// writeVideo adds a video frame at ms (milliseconds since the file's
// first frame, strictly increasing).
func (m *mp4Muxer) writeVideo(key bool, ms int64, data []byte) {
	if m.fragMS < 0 {
		m.fragMS = ms
	}
	if key || ms-m.fragMS >= fragmentTarget || m.bytes >= fragmentMaxBytes {
		m.flush(ms, false)
	}
	m.video.pending = append(m.video.pending, mp4Sample{ms: ms, key: key, data: data})
	m.bytes += len(data)
}

// writeAudio adds an Opus packet at ms.
func (m *mp4Muxer) writeAudio(ms int64, data []byte) {
	if m.audio == nil {
		return
	}
	m.audio.pending = append(m.audio.pending, mp4Sample{ms: ms, key: true, data: data})
	m.bytes += len(data)
}

// flush writes a fragment of every video frame before the one at next
// (their durations are known now) and the audio up to it; at the end
// (last) everything, the last frames lasting as long as the one before.
func (m *mp4Muxer) flush(next int64, last bool) {
	type run struct {
		t       *mp4Track
		samples []mp4Sample
		durs    []uint32
		base    uint64
	}
	var runs []run
	for _, t := range []*mp4Track{m.video, m.audio} {
		if t == nil || len(t.pending) == 0 {
			continue
		}
		n := len(t.pending)
		end := next
		if t == m.audio && !last {
			// Audio as far as the video goes; the rest waits, its last
			// packet for the duration the next gives.
			n = 0
			for n < len(t.pending)-1 && t.pending[n].ms < next {
				n++
			}
			if n == 0 {
				continue
			}
			end = t.pending[n].ms
		}
		r := run{t: t, samples: t.pending[:n], base: uint64(t.pending[0].ms * t.scale / 1000)}
		for i, s := range r.samples {
			var d uint32
			switch {
			case i+1 < n:
				d = ticks(t.pending[i+1].ms-s.ms, t.scale)
			case !last || t == m.video && next > s.ms:
				d = ticks(end-s.ms, t.scale)
			default:
				d = t.lastDur
			}
			if d == 0 {
				d = ticks(20, t.scale)
			}
			t.lastDur = d
			r.durs = append(r.durs, d)
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return
	}
	m.seq++
	// moof (§8.8.4): mfhd, then per track traf with tfhd
	// (default-base-is-moof: data offsets count from the moof), tfdt and
	// trun (data offset, duration, size and flags per sample).
	moofAt := m.off
	var offFix []int // where each trun's data_offset goes
	moof := appendBox(nil, "moof", func(b []byte) []byte {
		b = appendFullBox(b, "mfhd", 0, 0, func(b []byte) []byte { return binary.BigEndian.AppendUint32(b, m.seq) })
		for _, r := range runs {
			b = appendBox(b, "traf", func(b []byte) []byte {
				b = appendFullBox(b, "tfhd", 0, 0x020000, func(b []byte) []byte { return binary.BigEndian.AppendUint32(b, r.t.id) })
				b = appendFullBox(b, "tfdt", 1, 0, func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, r.base) })
				return appendFullBox(b, "trun", 0, 0x000701, func(b []byte) []byte {
					b = binary.BigEndian.AppendUint32(b, uint32(len(r.samples)))
					offFix = append(offFix, len(b))
					b = binary.BigEndian.AppendUint32(b, 0) // data_offset, below
					for i, s := range r.samples {
						flags := uint32(flagsSync)
						if r.t == m.video && !s.key {
							flags = flagsNonSync
						}
						b = binary.BigEndian.AppendUint32(b, r.durs[i])
						b = binary.BigEndian.AppendUint32(b, uint32(len(s.data)))
						b = binary.BigEndian.AppendUint32(b, flags)
					}
					return b
				})
			})
		}
		return b
	})
	size := 0
	for _, r := range runs {
		for _, s := range r.samples {
			size += len(s.data)
		}
	}
	data := len(moof) + 8 // the first sample follows the mdat header
	for i, r := range runs {
		binary.BigEndian.PutUint32(moof[offFix[i]:], uint32(data))
		for _, s := range r.samples {
			data += len(s.data)
		}
	}
	if runs[0].t == m.video && runs[0].samples[0].key {
		m.index = append(m.index, tfraEntry{time: runs[0].base, moof: moofAt})
	}
	m.write(moof)
	hdr := binary.BigEndian.AppendUint32(nil, uint32(8+size))
	m.write(append(hdr, "mdat"...))
	for _, r := range runs {
		for _, s := range r.samples {
			m.write(s.data)
			m.bytes -= len(s.data)
		}
		end := r.samples[len(r.samples)-1].ms + int64(r.durs[len(r.durs)-1])*1000/r.t.scale
		m.lastMS = max(m.lastMS, end)
		r.t.pending = append(r.t.pending[:0], r.t.pending[len(r.samples):]...)
	}
	m.fragMS = next
}

func ticks(ms, scale int64) uint32 {
	if ms <= 0 {
		return 0
	}
	return uint32(ms * scale / 1000)
}

// close writes the last fragment and the mfra index, patches the movie's
// duration, and closes the file.
func (m *mp4Muxer) close() error {
	if m.closed {
		return m.f.Err()
	}
	m.closed = true
	m.flush(0, true)
	// mfra (§8.8.9): a tfra of the keyframe fragments and mfro, which
	// gives mfra's size so a reader finds it from the end of the file.
	tfra := appendFullBox(nil, "tfra", 1, 0, func(b []byte) []byte {
		b = binary.BigEndian.AppendUint32(b, mp4VideoTrack)
		b = binary.BigEndian.AppendUint32(b, 0) // 1-byte traf, trun and sample numbers
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.index)))
		for _, e := range m.index {
			b = binary.BigEndian.AppendUint64(b, e.time)
			b = binary.BigEndian.AppendUint64(b, uint64(e.moof))
			b = append(b, 1, 1, 1)
		}
		return b
	})
	const mfroSize = 16
	mfra := appendBox(nil, "mfra", func(b []byte) []byte {
		b = append(b, tfra...)
		return appendFullBox(b, "mfro", 0, 0, func(b []byte) []byte {
			return binary.BigEndian.AppendUint32(b, uint32(8+len(tfra)+mfroSize))
		})
	})
	m.write(mfra)
	// The duration, in milliseconds, in mvhd (32 bits) and mehd (64).
	dur := uint64(max(m.lastMS, 0))
	m.f.WriteAt(binary.BigEndian.AppendUint32(nil, uint32(dur)), m.durOffs[0])
	m.f.WriteAt(binary.BigEndian.AppendUint64(nil, dur), m.durOffs[1])
	m.f.Close()
	return m.f.Err()
}

// appendMoov writes the movie header: mvhd, a trak per track, and mvex
// (fragments follow, with mehd giving their total duration).
func (m *mp4Muxer) appendMoov(b []byte, sps, pps []byte, info spsInfo) []byte {
	nextTrack := uint32(2)
	if m.audio != nil {
		nextTrack = 3
	}
	return appendBox(b, "moov", func(b []byte) []byte {
		b = appendFullBox(b, "mvhd", 0, 0, func(b []byte) []byte {
			b = binary.BigEndian.AppendUint32(b, 0) // creation_time
			b = binary.BigEndian.AppendUint32(b, 0) // modification_time
			b = binary.BigEndian.AppendUint32(b, mp4MovieScale)
			m.durOffs = append(m.durOffs, int64(len(b)))     // b starts the file
			b = binary.BigEndian.AppendUint32(b, 0)          // duration, patched
			b = binary.BigEndian.AppendUint32(b, 0x00010000) // rate 1.0
			b = binary.BigEndian.AppendUint16(b, 0x0100)     // volume 1.0
			b = append(b, make([]byte, 10)...)
			b = appendMatrix(b)
			b = append(b, make([]byte, 24)...) // pre_defined
			return binary.BigEndian.AppendUint32(b, nextTrack)
		})
		b = appendTrak(b, mp4VideoTrack, "vide", mp4VideoScale, info.width, info.height, func(b []byte) []byte {
			return appendAVC1(b, sps, pps, info)
		})
		if m.audio != nil {
			b = appendTrak(b, mp4AudioTrack, "soun", mp4AudioScale, 0, 0, appendOpus)
		}
		return appendBox(b, "mvex", func(b []byte) []byte {
			b = appendFullBox(b, "mehd", 1, 0, func(b []byte) []byte {
				m.durOffs = append(m.durOffs, int64(len(b))) // b starts the file
				return binary.BigEndian.AppendUint64(b, 0)   // fragment_duration, patched
			})
			for id := uint32(1); id < nextTrack; id++ {
				b = appendFullBox(b, "trex", 0, 0, func(b []byte) []byte {
					b = binary.BigEndian.AppendUint32(b, id)
					b = binary.BigEndian.AppendUint32(b, 1) // default_sample_description_index
					b = binary.BigEndian.AppendUint32(b, 0)
					b = binary.BigEndian.AppendUint32(b, 0)
					return binary.BigEndian.AppendUint32(b, 0)
				})
			}
			return b
		})
	})
}

// appendTrak writes a track with no samples of its own (they are in the
// fragments): tkhd, and mdia with mdhd, hdlr and minf.
func appendTrak(b []byte, id uint32, handler string, scale uint32, width, height int, entry func([]byte) []byte) []byte {
	return appendBox(b, "trak", func(b []byte) []byte {
		b = appendFullBox(b, "tkhd", 0, 3, func(b []byte) []byte { // enabled, in movie
			b = binary.BigEndian.AppendUint32(b, 0) // creation_time
			b = binary.BigEndian.AppendUint32(b, 0) // modification_time
			b = binary.BigEndian.AppendUint32(b, id)
			b = binary.BigEndian.AppendUint32(b, 0) // reserved
			b = binary.BigEndian.AppendUint32(b, 0) // duration: from the fragments
			b = append(b, make([]byte, 8)...)
			b = binary.BigEndian.AppendUint16(b, 0) // layer
			b = binary.BigEndian.AppendUint16(b, 0) // alternate_group
			volume := uint16(0)
			if handler == "soun" {
				volume = 0x0100
			}
			b = binary.BigEndian.AppendUint16(b, volume)
			b = binary.BigEndian.AppendUint16(b, 0)
			b = appendMatrix(b)
			b = binary.BigEndian.AppendUint32(b, uint32(width)<<16)
			return binary.BigEndian.AppendUint32(b, uint32(height)<<16)
		})
		return appendBox(b, "mdia", func(b []byte) []byte {
			b = appendFullBox(b, "mdhd", 0, 0, func(b []byte) []byte {
				b = binary.BigEndian.AppendUint32(b, 0)
				b = binary.BigEndian.AppendUint32(b, 0)
				b = binary.BigEndian.AppendUint32(b, scale)
				b = binary.BigEndian.AppendUint32(b, 0)      // duration
				b = binary.BigEndian.AppendUint16(b, 0x55c4) // language "und" (ISO 639-2/T, packed)
				return binary.BigEndian.AppendUint16(b, 0)
			})
			b = appendFullBox(b, "hdlr", 0, 0, func(b []byte) []byte {
				b = binary.BigEndian.AppendUint32(b, 0)
				b = append(b, handler...)
				b = append(b, make([]byte, 12)...)
				name := "Invigil video"
				if handler == "soun" {
					name = "Invigil audio"
				}
				return append(append(b, name...), 0)
			})
			return appendBox(b, "minf", func(b []byte) []byte {
				if handler == "vide" {
					b = appendFullBox(b, "vmhd", 0, 1, func(b []byte) []byte { return append(b, make([]byte, 8)...) })
				} else {
					b = appendFullBox(b, "smhd", 0, 0, func(b []byte) []byte { return append(b, 0, 0, 0, 0) })
				}
				b = appendBox(b, "dinf", func(b []byte) []byte {
					return appendFullBox(b, "dref", 0, 0, func(b []byte) []byte {
						b = binary.BigEndian.AppendUint32(b, 1)
						return appendFullBox(b, "url ", 0, 1, func(b []byte) []byte { return b }) // in this file
					})
				})
				return appendBox(b, "stbl", func(b []byte) []byte {
					b = appendFullBox(b, "stsd", 0, 0, func(b []byte) []byte {
						return entry(binary.BigEndian.AppendUint32(b, 1))
					})
					for _, typ := range []string{"stts", "stsc", "stco"} {
						b = appendFullBox(b, typ, 0, 0, func(b []byte) []byte { return binary.BigEndian.AppendUint32(b, 0) })
					}
					return appendFullBox(b, "stsz", 0, 0, func(b []byte) []byte { return append(b, make([]byte, 8)...) })
				})
			})
		})
	})
}

// appendAVC1 writes the H.264 sample entry (ISO/IEC 14496-15 §5.4.2)
// with its AVCDecoderConfigurationRecord (§5.3.3.1).
func appendAVC1(b []byte, sps, pps []byte, info spsInfo) []byte {
	return appendBox(b, "avc1", func(b []byte) []byte {
		b = append(b, make([]byte, 6)...)       // reserved
		b = binary.BigEndian.AppendUint16(b, 1) // data_reference_index
		b = append(b, make([]byte, 16)...)      // pre_defined, reserved
		b = binary.BigEndian.AppendUint16(b, uint16(info.width))
		b = binary.BigEndian.AppendUint16(b, uint16(info.height))
		b = binary.BigEndian.AppendUint32(b, 0x00480000) // 72 dpi
		b = binary.BigEndian.AppendUint32(b, 0x00480000)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint16(b, 1) // frame_count
		b = append(b, make([]byte, 32)...)      // compressorname
		b = binary.BigEndian.AppendUint16(b, 0x0018)
		b = binary.BigEndian.AppendUint16(b, 0xffff) // pre_defined = -1
		return appendBox(b, "avcC", func(b []byte) []byte {
			b = append(b, 1, info.profile, info.compat, info.level)
			b = append(b, 0xfc|3) // lengthSizeMinusOne = 3
			b = append(b, 0xe0|1) // one SPS
			b = binary.BigEndian.AppendUint16(b, uint16(len(sps)))
			b = append(b, sps...)
			b = append(b, 1) // one PPS
			b = binary.BigEndian.AppendUint16(b, uint16(len(pps)))
			b = append(b, pps...)
			switch info.profile {
			case 100, 110, 122, 144:
				b = append(b, 0xfc|byte(info.chromaFormat), 0xf8|byte(info.bitDepthLuma), 0xf8|byte(info.bitDepthChroma), 0)
			}
			return b
		})
	})
}

// appendOpus writes the Opus sample entry and its dOps box
// (Opus-in-ISOBMFF §4.3): stereo, 48 kHz, the browser encoders' pre-skip,
// channel mapping family 0.
func appendOpus(b []byte) []byte {
	return appendBox(b, "Opus", func(b []byte) []byte {
		b = append(b, make([]byte, 6)...)
		b = binary.BigEndian.AppendUint16(b, 1) // data_reference_index
		b = append(b, make([]byte, 8)...)       // reserved
		b = binary.BigEndian.AppendUint16(b, 2) // channelcount
		b = binary.BigEndian.AppendUint16(b, 16)
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, 48000<<16)
		return appendBox(b, "dOps", func(b []byte) []byte {
			b = append(b, 0, 2) // Version, OutputChannelCount
			b = binary.BigEndian.AppendUint16(b, opusPreSkip)
			b = binary.BigEndian.AppendUint32(b, 48000) // InputSampleRate
			b = binary.BigEndian.AppendUint16(b, 0)     // OutputGain
			return append(b, 0)                         // ChannelMappingFamily
		})
	})
}

// appendMatrix writes the identity transformation matrix.
func appendMatrix(b []byte) []byte {
	for _, v := range []uint32{0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// appendBox appends a box of type typ whose content body appends.
func appendBox(b []byte, typ string, body func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0)
	b = append(b, typ...)
	b = body(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// appendFullBox appends a box with a version and flags (§4.2).
func appendFullBox(b []byte, typ string, version byte, flags uint32, body func([]byte) []byte) []byte {
	return appendBox(b, typ, func(b []byte) []byte {
		b = append(b, version, byte(flags>>16), byte(flags>>8), byte(flags))
		return body(b)
	})
}

// errMP4 wraps a muxer's first write error.
var errMP4 = errors.New("record: mp4")

func (m *mp4Muxer) err() error {
	if err := m.f.Err(); err != nil {
		return fmt.Errorf("%w: %w", errMP4, err)
	}
	return nil
}
