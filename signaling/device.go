package signaling

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/invigil/invigil/room"
	qrcode "github.com/skip2/go-qrcode"
)

// A student may add a phone as a second camera: the student's page asks
// for a device link, a join token of the same student with the device
// claim "phone", as a URL and a QR code to scan. The phone joins beside
// the main session (neither replaces the other); the proctor sees both
// cameras in the student's tile.

// DevicePhone is the device a device link adds.
const DevicePhone = "phone"

// qrPixels is the QR code's size: large enough to scan from a laptop
// screen at arm's length.
const qrPixels = 256

// DeviceLinkMessage answers device_link.
type DeviceLinkMessage struct {
	Envelope
	Device  string `json:"device"`
	URL     string `json:"url"`
	QR      string `json:"qr"` // a data: URL of a PNG image of URL
	Expires int64  `json:"expires"`
}

// deviceLink mints the link for a student's phone. The token lives as
// long as the student's own and admits only a "phone" session of the
// same identity, room and name, required to publish its camera.
func (s *session) deviceLink(m *Inbound) error {
	if s.p.Device != "" { // the table let only students through
		return protoErr(CodeForbidden, "only a student's main device adds another")
	}
	if s.srv.cfg.PublicURL == "" {
		return protoErr(CodeForbidden, "device links are not enabled on this node (it has no public URL)")
	}
	g := s.grant
	tok, err := MintToken(s.srv.cfg.Secret, TokenSpec{Room: g.Room, Identity: g.Identity, Role: room.RoleStudent, Name: g.Name,
		Expires: g.Expires, Device: DevicePhone, Require: []string{"camera"}, Record: g.Record})
	if err != nil {
		return fmt.Errorf("device link: %w", err)
	}
	url := strings.TrimSuffix(s.srv.cfg.PublicURL, "/") + "/student#token=" + tok
	png, err := qrcode.Encode(url, qrcode.Medium, qrPixels)
	if err != nil {
		return fmt.Errorf("device link QR code: %w", err)
	}
	s.log.Info("device link issued", "device", DevicePhone)
	s.send(DeviceLinkMessage{Envelope: envelope(TypeDeviceLink, m.ID), Device: DevicePhone, URL: url,
		QR: "data:image/png;base64," + base64.StdEncoding.EncodeToString(png), Expires: g.Expires.Unix()})
	return nil
}
