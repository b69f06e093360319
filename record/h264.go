package record

import (
	"encoding/binary"
	"errors"
)

// H.264 NAL unit types (ITU-T H.264 Table 7-1) the recorder looks at.
const (
	nalIDR = 5
	nalSPS = 7
	nalPPS = 8
	nalAUD = 9
)

// avcFrame is one H.264 access unit as pion's depacketizer gives it with
// IsAVC (RFC 6184 single NAL units, STAP-A and FU-A reassembled): NAL
// units each behind a 4-byte big-endian length, the form an MP4 sample
// holds (ISO/IEC 14496-15 §5.3.2, lengthSizeMinusOne = 3).
type avcFrame struct {
	key      bool   // holds an IDR slice
	sps, pps []byte // the last of each the frame carries, nil if none
	sample   []byte // the NAL units without SPS, PPS and AUD: the MP4 sample
}

// errBadNAL is an access unit whose lengths do not add up.
var errBadNAL = errors.New("record: malformed H.264 access unit")

// splitAVC reads a length-prefixed access unit. Parameter sets move to
// the sample entry (avcC) and access unit delimiters are dropped: an
// 'avc1' sample carries neither (ISO/IEC 14496-15 §5.3.3).
func splitAVC(b []byte) (avcFrame, error) {
	var f avcFrame
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		if len(b) < 4 {
			return f, errBadNAL
		}
		n := int(binary.BigEndian.Uint32(b))
		if n == 0 || n > len(b)-4 {
			return f, errBadNAL
		}
		nal := b[4 : 4+n]
		b = b[4+n:]
		switch nal[0] & 0x1f {
		case nalSPS:
			f.sps = nal
			continue
		case nalPPS:
			f.pps = nal
			continue
		case nalAUD:
			continue
		case nalIDR:
			f.key = true
		}
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, nal...)
	}
	f.sample = out
	return f, nil
}

// h264KeyFrame reports whether a length-prefixed access unit holds an IDR
// slice.
func h264KeyFrame(b []byte) bool {
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b))
		if n == 0 || n > len(b)-4 {
			return false
		}
		if b[4]&0x1f == nalIDR {
			return true
		}
		b = b[4+n:]
	}
	return false
}

// spsInfo is what the sample entry needs from a sequence parameter set.
type spsInfo struct {
	profile, compat, level byte
	chromaFormat           uint // chroma_format_idc
	bitDepthLuma           uint // minus 8
	bitDepthChroma         uint // minus 8
	width, height          int
}

// errBadSPS is a sequence parameter set that could not be read.
var errBadSPS = errors.New("record: malformed H.264 sequence parameter set")

// parseSPS reads the fields of a sequence parameter set NAL unit
// (ITU-T H.264 §7.3.2.1.1) up to the frame cropping, and the picture
// size they give (§7.4.2.1.1, frame_crop_*_offset).
func parseSPS(nal []byte) (spsInfo, error) {
	var s spsInfo
	if len(nal) < 4 || nal[0]&0x1f != nalSPS {
		return s, errBadSPS
	}
	s.profile, s.compat, s.level = nal[1], nal[2], nal[3]
	r := bitReader{b: unescapeRBSP(nal[4:])}
	r.ue() // seq_parameter_set_id
	s.chromaFormat = 1
	switch s.profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		s.chromaFormat = r.ue()
		if s.chromaFormat > 3 {
			return s, errBadSPS
		}
		if s.chromaFormat == 3 {
			r.bit() // separate_colour_plane_flag
		}
		s.bitDepthLuma = r.ue()
		s.bitDepthChroma = r.ue()
		r.bit()           // qpprime_y_zero_transform_bypass_flag
		if r.bit() == 1 { // seq_scaling_matrix_present_flag
			lists := 8
			if s.chromaFormat == 3 {
				lists = 12
			}
			for i := range lists {
				if r.bit() == 1 { // seq_scaling_list_present_flag[i]
					size := 16
					if i >= 6 {
						size = 64
					}
					r.skipScalingList(size)
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bit() // delta_pic_order_always_zero_flag
		r.se()  // offset_for_non_ref_pic
		r.se()  // offset_for_top_to_bottom_field
		n := r.ue()
		if n > 255 {
			return s, errBadSPS
		}
		for range n {
			r.se() // offset_for_ref_frame[i]
		}
	}
	r.ue()  // max_num_ref_frames
	r.bit() // gaps_in_frame_num_value_allowed_flag
	wMBs := r.ue() + 1
	hMaps := r.ue() + 1
	frameMBsOnly := r.bit()
	if frameMBsOnly == 0 {
		r.bit() // mb_adaptive_frame_field_flag
	}
	r.bit() // direct_8x8_inference_flag
	var cropL, cropR, cropT, cropB uint
	if r.bit() == 1 {
		cropL, cropR, cropT, cropB = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.err || wMBs > 1024 || hMaps > 1024 {
		return s, errBadSPS
	}
	// Crop units (Table 6-1 and equations 7-19 to 7-22).
	unitX, unitY := uint(1), 2-frameMBsOnly
	switch s.chromaFormat {
	case 1:
		unitX, unitY = 2, 2*(2-frameMBsOnly)
	case 2:
		unitX = 2
	}
	w := wMBs * 16
	h := (2 - frameMBsOnly) * hMaps * 16
	if unitX*(cropL+cropR) >= w || unitY*(cropT+cropB) >= h {
		return s, errBadSPS
	}
	s.width, s.height = int(w-unitX*(cropL+cropR)), int(h-unitY*(cropT+cropB))
	return s, nil
}

// unescapeRBSP removes emulation prevention bytes: 0x000003 → 0x0000
// (ITU-T H.264 §7.4.1).
func unescapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// bitReader reads Exp-Golomb coded fields (ITU-T H.264 §9.1). Reading
// past the end sets err and yields zeros.
type bitReader struct {
	b   []byte
	pos int // in bits
	err bool
}

func (r *bitReader) bit() uint {
	if r.pos >= len(r.b)*8 {
		r.err = true
		return 0
	}
	v := r.b[r.pos/8] >> (7 - r.pos%8) & 1
	r.pos++
	return uint(v)
}

// ue is ue(v): unsigned Exp-Golomb.
func (r *bitReader) ue() uint {
	zeros := 0
	for r.bit() == 0 {
		if r.err || zeros == 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	v := uint(1)
	for range zeros {
		v = v<<1 | r.bit()
	}
	return v - 1
}

// se is se(v): signed Exp-Golomb.
func (r *bitReader) se() int {
	k := r.ue()
	if k%2 == 1 {
		return int(k+1) / 2
	}
	return -int(k / 2)
}

// skipScalingList reads past scaling_list() (§7.3.2.1.1.1).
func (r *bitReader) skipScalingList(size int) {
	last, next := 8, 8
	for range size {
		if next != 0 {
			next = (last + r.se() + 256) % 256
		}
		if next != 0 {
			last = next
		}
		if r.err {
			return
		}
	}
}
