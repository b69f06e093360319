package sfu

// Payload inspection for forwarding decisions: where a keyframe starts (a
// layer switch may only happen there) and the VP8 fields a switch must
// keep continuous. Nothing here decodes media.

// isKeyframeStart reports whether payload is the first packet of a
// keyframe for the codec (by MIME type, lower case compared).
func isKeyframeStart(mime string, payload []byte) bool {
	switch mime {
	case "video/vp8", "video/VP8":
		return vp8KeyframeStart(payload)
	case "video/h264", "video/H264":
		return h264KeyframeStart(payload)
	}
	return false
}

// vp8Descriptor is the parsed VP8 payload descriptor (RFC 7741 §4.2).
type vp8Descriptor struct {
	size      int  // bytes of descriptor before the VP8 payload
	start     bool // S bit with partition index 0: a frame starts here
	picIDAt   int  // offset of the picture ID, 0 if absent
	picID16   bool // M bit: the picture ID is 15 bits in two bytes
	tl0At     int  // offset of TL0PICIDX, 0 if absent
	tidAt     int  // offset of the TID/Y/KEYIDX byte when T is set, else 0
	malformed bool
}

func parseVP8(p []byte) (d vp8Descriptor) {
	if len(p) < 1 {
		d.malformed = true
		return d
	}
	d.start = p[0]&0x10 != 0 && p[0]&0x0F == 0
	i := 1
	if p[0]&0x80 != 0 { // X: extension byte follows
		if len(p) < 2 {
			d.malformed = true
			return d
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture ID
			if len(p) <= i {
				d.malformed = true
				return d
			}
			d.picIDAt = i
			if p[i]&0x80 != 0 {
				d.picID16 = true
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			d.tl0At = i
			i++
		}
		if x&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			if x&0x20 != 0 {
				d.tidAt = i
			}
			i++
		}
	}
	if i > len(p) {
		d.malformed = true
		return d
	}
	d.size = i
	return d
}

// tid is the packet's temporal layer (RFC 7741 §4.2, TID): 0 when the
// descriptor carries none, so a stream without temporal layers is all
// base layer.
func (d vp8Descriptor) tid(p []byte) int {
	if d.tidAt == 0 || d.tidAt >= len(p) {
		return 0
	}
	return int(p[d.tidAt] >> 6)
}

// vp8KeyframeStart: a frame start whose payload header has P = 0
// (RFC 6386 §9.1, RFC 7741 §4.3).
func vp8KeyframeStart(p []byte) bool {
	d := parseVP8(p)
	return !d.malformed && d.start && d.size < len(p) && p[d.size]&0x01 == 0
}

// pictureID reads the picture ID at d.picIDAt.
func (d vp8Descriptor) pictureID(p []byte) uint16 {
	if d.picID16 {
		return uint16(p[d.picIDAt]&0x7F)<<8 | uint16(p[d.picIDAt+1])
	}
	return uint16(p[d.picIDAt] & 0x7F)
}

// setPictureID writes id, keeping the field's width.
func (d vp8Descriptor) setPictureID(p []byte, id uint16) {
	if d.picID16 {
		p[d.picIDAt] = 0x80 | byte(id>>8)&0x7F
		p[d.picIDAt+1] = byte(id)
		return
	}
	p[d.picIDAt] = byte(id) & 0x7F
}

// picIDMask is the modulus of a picture ID field.
func (d vp8Descriptor) picIDMask() uint16 {
	if d.picID16 {
		return 0x7FFF
	}
	return 0x7F
}

// h264KeyframeStart: an IDR slice (NAL type 5) or SPS (7) at the start of
// a packet, directly, in a STAP-A, or as the first fragment of an FU-A
// (RFC 6184 §5.6–5.8).
func h264KeyframeStart(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch nal := p[0] & 0x1F; nal {
	case 5, 7:
		return true
	case 24: // STAP-A: 2-byte sizes, then NAL units
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if i+2 >= len(p) || size == 0 {
				return false
			}
			if t := p[i+2] & 0x1F; t == 5 || t == 7 {
				return true
			}
			i += 2 + size
		}
	case 28: // FU-A: start bit and the fragmented NAL's type
		return p[1]&0x80 != 0 && (p[1]&0x1F == 5 || p[1]&0x1F == 7)
	}
	return false
}
