package sfu

import (
	"strconv"
	"strings"
)

// The codecs the node forwards and how it offers them. Forwarding never
// transcodes, so a codec missing here is one a student cannot publish:
// VP8 and constrained-baseline or baseline H.264 for video (what every
// proctor's browser decodes), Opus for audio.

// Payload types the node uses in its own offers (a subscriber's answer
// keeps them, RFC 3264 §6.1); the same numbers browsers use.
const (
	ptVP8       = 96
	ptVP8RTX    = 97
	ptH264CB    = 102 // profile-level-id 42e01f: constrained baseline
	ptH264CBRTX = 103
	ptH264B     = 104 // profile-level-id 42001f: baseline
	ptH264BRTX  = 105
	ptOpus      = 111
)

// RTCP feedback (RFC 4585 §4.2) per direction. Publishers get
// transport-wide CC, so the browser's own congestion control paces its
// upload; subscribers get REMB (their browser estimates the downlink and
// the node reads it), NACK and keyframe requests.
var (
	publisherVideoFB  = []string{"goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"}
	publisherAudioFB  = []string{"transport-cc"}
	subscriberVideoFB = []string{"goog-remb", "ccm fir", "nack", "nack pli"}
)

// opusFmtp asks for in-band FEC (RFC 7587 §6.1), so a lost audio packet is
// rebuilt from the next one rather than resent.
const opusFmtp = "minptime=10;useinbandfec=1"

// supportedCodec reports whether the node can forward what c describes.
func supportedCodec(kind string, c sdpCodec) bool {
	switch {
	case kind == "video" && strings.EqualFold(c.name, "VP8") && c.clockRate == 90000:
		return true
	case kind == "video" && strings.EqualFold(c.name, "H264") && c.clockRate == 90000:
		// Forwarded untouched, so the subscriber decodes the same
		// profile: baseline or constrained baseline, packetization mode 1.
		p := fmtpValue(c.fmtp, "profile-level-id")
		return fmtpValue(c.fmtp, "packetization-mode") == "1" && len(p) == 6 && (p[:4] == "42e0" || p[:4] == "4200")
	case kind == "audio" && strings.EqualFold(c.name, "opus") && c.clockRate == 48000:
		return true
	}
	return false
}

// answerCodecs picks, from the payload types a client offers in one
// section, those the node receives (in the client's order of preference)
// and each one's RTX, with the node's feedback.
func answerCodecs(kind string, offered []sdpCodec) []sdpCodec {
	var out []sdpCodec
	for _, c := range offered {
		if !supportedCodec(kind, c) {
			continue
		}
		c.feedback = publisherFeedback(kind)
		if kind == "audio" {
			c.fmtp = opusFmtp
			c.channels = 2
		}
		out = append(out, c)
		if rtx, ok := rtxOf(offered, c.pt); ok {
			rtx.feedback = nil
			out = append(out, rtx)
		}
	}
	return out
}

func publisherFeedback(kind string) []string {
	if kind == "video" {
		return publisherVideoFB
	}
	return publisherAudioFB
}

// rtxOf finds the RTX payload type whose apt names pt (RFC 4588 §8.6).
func rtxOf(codecs []sdpCodec, pt uint8) (sdpCodec, bool) {
	for _, c := range codecs {
		if c.apt() == int(pt) {
			return c, true
		}
	}
	return sdpCodec{}, false
}

// sendCodecs is what the node offers or answers for a section it sends a
// source of codec src on: the source's codec alone (and its RTX for
// video), with the subscriber's payload types when it has named them
// (its own offer, or an earlier answer) and the node's otherwise.
func sendCodecs(src Codec, client []sdpCodec) (main sdpCodec, rtx *sdpCodec) {
	kind := "audio"
	if strings.HasPrefix(strings.ToLower(src.MimeType), "video/") {
		kind = "video"
	}
	name := src.MimeType[strings.IndexByte(src.MimeType, '/')+1:]
	main = sdpCodec{name: name, clockRate: src.ClockRate, channels: src.Channels, fmtp: src.Fmtp}
	if kind == "audio" {
		main.fmtp, main.channels = opusFmtp, 2
	} else {
		main.feedback = subscriberVideoFB
	}
	found := false
	for _, c := range client {
		if sameCodec(kind, c, main) {
			main.pt, found = c.pt, true
			if r, ok := rtxOf(client, c.pt); ok {
				r.feedback = nil
				rtx = &r
			}
			break
		}
	}
	if !found {
		main.pt = ownPT(main)
		if kind == "video" {
			rtx = &sdpCodec{pt: main.pt + 1, name: "rtx", clockRate: 90000, fmtp: "apt=" + strconv.Itoa(int(main.pt))}
		}
	}
	return main, rtx
}

// ownPT is the node's payload type for a codec it offers first.
func ownPT(c sdpCodec) uint8 {
	switch {
	case strings.EqualFold(c.name, "VP8"):
		return ptVP8
	case strings.EqualFold(c.name, "H264") && strings.HasPrefix(fmtpValue(c.fmtp, "profile-level-id"), "4200"):
		return ptH264B
	case strings.EqualFold(c.name, "H264"):
		return ptH264CB
	}
	return ptOpus
}

// sameCodec reports whether a and b describe bitstreams a decoder of one
// takes from the other: the same name and clock rate, and for H.264 the
// same profile_idc (the first byte of profile-level-id, RFC 6184 §8.1)
// and packetization mode.
func sameCodec(kind string, a, b sdpCodec) bool {
	if !strings.EqualFold(a.name, b.name) || a.clockRate != b.clockRate {
		return false
	}
	if kind == "video" && strings.EqualFold(a.name, "H264") {
		pa, pb := fmtpValue(a.fmtp, "profile-level-id"), fmtpValue(b.fmtp, "profile-level-id")
		return len(pa) >= 2 && len(pb) >= 2 && pa[:2] == pb[:2] &&
			fmtpValue(a.fmtp, "packetization-mode") == fmtpValue(b.fmtp, "packetization-mode")
	}
	return true
}

// codecOf turns a negotiated payload type into the Codec a Track reports.
func codecOf(kind string, c sdpCodec) Codec {
	return Codec{MimeType: kind + "/" + c.name, ClockRate: c.clockRate, Channels: c.channels, PayloadType: c.pt, Fmtp: c.fmtp}
}
