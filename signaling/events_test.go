package signaling

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/invigil/invigil/audit"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// TestAuditTrail: a session leaves its events in the room's trail, a
// student's forbidden request among them, and the events endpoint gives
// them to an admin or the room's proctor only.
func TestAuditTrail(t *testing.T) {
	store, err := audit.NewFileStore(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := newTestServer(t, room.Config{Events: store, NodeID: "node-a"})
	proctor := srv.join(t, "exam-1", "proctor-1", room.RoleProctor)
	alice := srv.join(t, "exam-1", "alice", room.RoleStudent)
	testclient.Eventually(t, 10*time.Second, "media", func() bool { return proctor.PacketsFrom(alice.Me.SID) > 5 })
	alice.Send(map[string]any{"v": 1, "type": "focus", "identity": "bob"})
	if m, ok := alice.NextEvent(TypeError, 5*time.Second); !ok || m.Code != CodeForbidden {
		t.Fatalf("student focus: %+v", m)
	}
	// The proctor sees the trail live: its own join first, then alice's
	// events, the forbidden request among them.
	var live []string
	admitted := 0
	for len(live) < 5 {
		m, ok := proctor.NextEvent(TypeEvent, 5*time.Second)
		if !ok {
			t.Fatalf("live events so far %v", live)
		}
		if m.Event.Kind == room.EventAdmitted {
			admitted++ // after the camera's track_published, which may come second
			continue
		}
		live = append(live, m.Event.Kind+":"+m.Event.Actor)
	}
	if want := "join:proctor-1,join:alice,track_published:alice,track_published:alice,forbidden:alice"; join(live) != want {
		t.Errorf("live events %v, want %s", live, want)
	}
	if admitted != 1 {
		t.Errorf("%d admitted events, want 1", admitted)
	}
	alice.Send(map[string]any{"v": 1, "type": "leave"})
	if _, ok := proctor.NextEvent(TypeParticipantLeft, 5*time.Second); !ok {
		t.Fatal("no participant_left")
	}

	routes := httpapi.NewRoutes(BearerVerifier([]byte(testSecret)))
	audit.RegisterAPI(routes, store)
	api := httptest.NewServer(routes)
	defer api.Close()
	get := func(token, query string) (int, []room.Event) {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/v1/rooms/exam-1/events"+query, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Events []room.Event `json:"events"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Events
	}
	var events []room.Event
	testclient.Eventually(t, 5*time.Second, "the leave recorded", func() bool {
		_, events = get(mint(t, "*", "api", room.RoleAdmin), "")
		return len(events) > 0 && events[len(events)-1].Kind == room.EventLeave
	})
	var kinds []string
	var forbidden room.Event
	for i, e := range events {
		if e.Seq != int64(i+1) || e.Node != "node-a" || e.Time.IsZero() {
			t.Errorf("event %d: %+v", i, e)
		}
		if e.Kind == room.EventForbidden {
			forbidden = e
		}
		if e.Kind != room.EventAdmitted {
			kinds = append(kinds, e.Kind+":"+e.Actor)
		}
	}
	want := []string{"join:proctor-1", "join:alice", "track_published:alice", "track_published:alice", "forbidden:alice",
		"track_unpublished:alice", "track_unpublished:alice", "leave:alice"}
	if join(kinds) != join(want) {
		t.Errorf("trail %v, want %v", kinds, want)
	}
	if f := forbidden; f.Details["request"] != "focus" {
		t.Errorf("forbidden event details %v", f.Details)
	}
	if code, evs := get(mint(t, "exam-1", "proctor-1", room.RoleProctor), "?after=4"); code != 200 || len(evs) != len(events)-4 || evs[0].Seq != 5 {
		t.Errorf("room's proctor, after=4: %d %d events", code, len(evs))
	}
	for name, tc := range map[string]struct {
		token string
		code  int
	}{
		"no token":              {"", 401},
		"forged":                {"a.b.c", 401},
		"student":               {mint(t, "exam-1", "alice", room.RoleStudent), 403},
		"other room's proctor":  {mint(t, "exam-2", "p2", room.RoleProctor), 403},
		"admin":                 {mint(t, "*", "api", room.RoleAdmin), 200},
		"room's reviewer":       {mint(t, "exam-1", "rev", room.RoleReviewer), 200},
		"every room's reviewer": {mint(t, "*", "rev", room.RoleReviewer), 200},
		"other room's reviewer": {mint(t, "exam-2", "rev", room.RoleReviewer), 403},
	} {
		if code, _ := get(tc.token, ""); code != tc.code {
			t.Errorf("%s: HTTP %d, want %d", name, code, tc.code)
		}
	}
	if code, _ := get(mint(t, "*", "api", room.RoleAdmin), "?after=-1"); code != 400 {
		t.Errorf("after=-1: HTTP %d", code)
	}
}
