package main

import (
	"encoding/base64"
	"image/png"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
)

// TestSecondDevice: a student's page asks for a device link; the phone
// that opens it joins as the same student beside the laptop (neither
// replaces the other), and the proctor receives both cameras, the phone
// announced with its device. A second phone replaces the first, not the
// laptop; the phone may not mint more links; ending the student ends
// both devices.
func TestSecondDevice(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	url := wsURL(srv.base)
	const roomName = "exam-dev"
	proctor := testclient.Join(t, url, secret, roomName, "proctor-1", room.RoleProctor)
	alice := testclient.Join(t, url, secret, roomName, "alice", room.RoleStudent)

	alice.Send(map[string]any{"v": 1, "type": "device_link", "id": "dl"})
	reply := next(t, alice, "device_link", nil)
	prefix := srv.base + "/student#token="
	if !strings.HasPrefix(reply.URL, prefix) {
		t.Fatalf("device link %q does not open this node's student page (%s…)", reply.URL, prefix)
	}
	tok := strings.TrimPrefix(reply.URL, prefix)
	grant, err := signaling.VerifyToken([]byte(secret), tok)
	if err != nil {
		t.Fatalf("the device link's token: %v", err)
	}
	if grant.Identity != "alice" || grant.Room != roomName || grant.Device != signaling.DevicePhone || grant.Role != room.RoleStudent {
		t.Fatalf("the device link admits %+v; want alice's phone in %s", grant, roomName)
	}
	const pngPrefix = "data:image/png;base64,"
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(reply.QR, pngPrefix))
	if !strings.HasPrefix(reply.QR, pngPrefix) || err != nil {
		t.Fatalf("the QR code is not a PNG data URL: %.40q… (%v)", reply.QR, err)
	}
	if img, err := png.Decode(strings.NewReader(string(raw))); err != nil || img.Bounds().Dx() < 200 {
		t.Fatalf("the QR code does not decode as a PNG of at least 200 px: %v", err)
	}

	phone := testclient.JoinWith(t, url, testclient.Options{Token: tok, Identity: "alice", Role: room.RoleStudent})
	if phone.Me.Device != signaling.DevicePhone {
		t.Errorf("the phone joined as %+v; want device phone", phone.Me)
	}
	joined := next(t, proctor, "participant_joined", func(m testclient.Msg) bool { return m.Participant.SID == phone.Me.SID })
	if joined.Participant.Identity != "alice" || joined.Participant.Device != signaling.DevicePhone {
		t.Errorf("the proctor was told %+v", joined.Participant)
	}
	testclient.Eventually(t, 15*time.Second, "both of alice's cameras at the proctor", func() bool {
		return proctor.PacketsFrom(alice.Me.SID) > 30 && proctor.PacketsFrom(phone.Me.SID) > 30
	})
	// Neither device kicked the other.
	for _, c := range []*testclient.Client{alice, phone} {
		select {
		case m := <-c.Events:
			if m.Type == "leave" {
				t.Fatalf("%s was told to leave: %+v", c.Me.SID, m)
			}
		default:
		}
	}

	phone.Send(map[string]any{"v": 1, "type": "device_link"})
	if e := next(t, phone, "error", nil); e.Code != "forbidden" {
		t.Errorf("the phone asking for a device link: %+v, want forbidden", e)
	}

	// The same link opened on another phone replaces the first phone only.
	phone2 := testclient.JoinWith(t, url, testclient.Options{Token: tok, Identity: "alice", Role: room.RoleStudent})
	if l := next(t, phone, "leave", nil); l.Reason != room.ReasonReplaced {
		t.Errorf("the first phone was told %+v", l)
	}
	testclient.Eventually(t, 15*time.Second, "the second phone at the proctor", func() bool { return proctor.PacketsFrom(phone2.Me.SID) > 30 })
	before := proctor.PacketsFrom(alice.Me.SID)
	testclient.Eventually(t, 5*time.Second, "the laptop still at the proctor", func() bool { return proctor.PacketsFrom(alice.Me.SID) > before+30 })

	proctor.Send(map[string]any{"v": 1, "type": "end", "identity": "alice", "text": "Second person in the room."})
	for _, c := range []*testclient.Client{alice, phone2} {
		if l := next(t, c, "leave", nil); l.Reason != room.ReasonEnded {
			t.Errorf("%s was told %+v when the proctor ended alice", c.Me.SID, l)
		}
	}
}
