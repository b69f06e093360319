package signaling

import (
	"github.com/pion/sdp/v3"
)

// sendingSections counts the media sections of an offer that send:
// sendonly, sendrecv, or no direction (RFC 3264 §5.1 default sendrecv).
// A simulcast camera is one section however many layers it has.
func sendingSections(offer string) (int, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(offer); err != nil {
		return 0, err
	}
	n := 0
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" && m.MediaName.Media != "video" {
			continue
		}
		_, recvonly := m.Attribute("recvonly")
		_, inactive := m.Attribute("inactive")
		if !recvonly && !inactive {
			n++
		}
	}
	return n, nil
}
