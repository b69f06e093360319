package signaling

import (
	"github.com/pion/sdp/v3"
)

// section is one media section of an offer that sends media.
type section struct {
	mid  string
	kind string // audio or video
}

// sendingSections lists the media sections of an offer that send:
// sendonly, sendrecv, or no direction (RFC 3264 §5.1 default sendrecv).
// A simulcast camera is one section however many layers it has.
func sendingSections(offer string) ([]section, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return nil, err
	}
	var out []section
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		_, recvonly := m.Attribute("recvonly")
		_, inactive := m.Attribute("inactive")
		if !recvonly && !inactive {
			mid, _ := m.Attribute("mid")
			out = append(out, section{mid: mid, kind: m.MediaName.Media})
		}
	}
	return out, nil
}
