package signaling

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// mintRequire signs a student token with a require claim.
func mintRequire(t *testing.T, identity string, require []string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": identity, "room": "exam-1", "role": "student", "require": require,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(),
	}).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAdmitted: a student is admitted once every source its token
// requires is published (camera by default); one whose token requires a
// screen it does not share is not; a bad require claim is refused; losing
// a required track is marked required on the trail.
func TestAdmitted(t *testing.T) {
	store, err := audit.NewFileStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := newTestServer(t, room.Config{Events: store})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)

	alice := srv.join(t, "exam-1", "alice", room.RoleStudent) // default: camera
	if a := nextKind(t, proctor, room.EventAdmitted); a.Subject != "alice" {
		t.Errorf("admitted %+v", a)
	}
	bob := testclient.JoinWith(t, srv.url, testclient.Options{Token: mintRequire(t, "bob", []string{"camera", "microphone"}), Identity: "bob", Role: room.RoleStudent})
	a := nextKind(t, proctor, room.EventAdmitted)
	if a.Subject != "bob" || len(a.Details["required"].([]any)) != 2 {
		t.Errorf("admitted %+v", a)
	}
	testclient.JoinWith(t, srv.url, testclient.Options{Token: mintRequire(t, "carol", []string{"camera", "screen"}), Identity: "carol", Role: room.RoleStudent})
	deadline := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case m := <-proctor.Events:
			if m.Type == TypeEvent && m.Event.Kind == room.EventAdmitted {
				t.Errorf("carol admitted without a screen: %+v", m.Event)
			}
		case <-deadline:
			done = true
		}
	}

	c := testclient.Dial(t, srv.url)
	testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": mintRequire(t, "dave", []string{"webcam"})})
	if m, err := testclient.Recv(c, 5*time.Second); err != nil || m.Code != CodeTokenInvalid {
		t.Errorf("require webcam: %+v %v", m, err)
	}

	_, _ = alice, bob
	bob.Send(map[string]any{"v": 1, "type": "leave"})
	u := nextKind(t, proctor, room.EventTrackUnpublished)
	if u.Subject != "bob" || u.Details["required"] != true {
		t.Errorf("bob's required track unpublished: %+v", u)
	}
}
