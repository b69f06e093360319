package sfu

import (
	"testing"
)

// FuzzPayloadParsers: the VP8 descriptor and keyframe parsers read every
// publisher's packets on the hot path; no payload may make them panic or
// point outside it.
func FuzzPayloadParsers(f *testing.F) {
	f.Add([]byte{0x90, 0xC0, 0x80, 0x05, 0x01, 0x00, 0x9d, 0x01, 0x2a})
	f.Add([]byte{0x10, 0x00})
	f.Add([]byte{0x7c, 0x85, 0x88})       // H.264 FU-A start of an IDR
	f.Add([]byte{0x78, 0x00, 0x02, 0x67}) // H.264 STAP-A with an SPS
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, p []byte) {
		d := parseVP8(p)
		if !d.malformed {
			if d.size > len(p) || d.picIDAt >= len(p) || d.tl0At >= len(p) || (d.picID16 && d.picIDAt+1 >= len(p)) {
				t.Fatalf("descriptor %+v points outside %d bytes", d, len(p))
			}
			if d.picIDAt != 0 {
				_ = d.pictureID(p)
			}
		}
		vp8KeyframeStart(p)
		h264KeyframeStart(p)
		scratch := make([]byte, maxCachedPacket)
		if !d.malformed {
			rewriteVP8(d, p, scratch, 1, 1)
		}
	})
}
