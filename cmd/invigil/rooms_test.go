package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/pionlog"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/internal/testredis"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/turn"
	pionturn "github.com/pion/turn/v5"
)

// api calls a node's HTTP API with token (none when "") and a JSON body
// (none when nil), and returns the status and the decoded answer.
func api(t testing.TB, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %q", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// joinCode sends a join with token to base and returns the code of the
// error it is answered with ("" when it joined).
func joinCode(t *testing.T, base, token string) string {
	t.Helper()
	m := joinWith(t, base, token)
	if m["type"] == "joined" {
		return ""
	}
	code, _ := m["code"].(string)
	return code
}

// issuedAt is a student token issued at iat, valid a minute.
func issuedAt(t *testing.T, roomName, identity string, iat time.Time) string {
	return testclient.MintWith(t, secret, roomName, identity, room.RoleStudent, map[string]any{"iat": iat.Unix(), "nbf": iat.Unix() - 1})
}

// kinds counts a trail's events by kind, and admin_action by action.
func kinds(events []room.Event) map[string]int {
	n := map[string]int{}
	for _, e := range events {
		n[e.Kind]++
		if e.Kind == room.EventAdminAction {
			n["admin_action:"+fmt.Sprint(e.Details["action"])]++
		}
	}
	return n
}

// participantState returns the state of identity in GET /v1/rooms/{room}.
func participantState(t *testing.T, base, roomName, identity string) (string, map[string]any) {
	t.Helper()
	code, body := api(t, http.MethodGet, base+"/v1/rooms/"+roomName, adminToken(t), nil)
	if code != http.StatusOK {
		t.Fatalf("GET room: %d %v", code, body)
	}
	ps, _ := body["participants"].([]any)
	for _, p := range ps {
		p := p.(map[string]any)
		if p["identity"] == identity && p["device"] == "" {
			c, _ := p["connection"].(map[string]any)
			return p["state"].(string), c
		}
	}
	return "", nil
}

// TestRoomsAPIEnd: pion students and a proctor in a room; the API lists
// the room and shows each participant live with a round trip; DELETE ends
// it: each gets leave room_ended, the trail has admin_action and
// room_closed ended_by_admin, the old token is refused room_ended (also
// after a restart, from the data dir) and a token issued later joins.
func TestRoomsAPIEnd(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServe(t, "--api-secret", secret, "--data-dir", dataDir)
	ws := wsURL(srv.base)
	const exam = "exam-end"
	proctor := testclient.Join(t, ws, secret, exam, "proctor-1", room.RoleProctor)
	aliceTok := testclient.Mint(t, secret, exam, "alice", room.RoleStudent)
	alice := testclient.JoinWith(t, ws, testclient.Options{Token: aliceTok, Identity: "alice", Role: room.RoleStudent})
	bob := testclient.Join(t, ws, secret, exam, "bob", room.RoleStudent)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.stderr.String())
		}
	})

	code, list := api(t, http.MethodGet, srv.base+"/v1/rooms", adminToken(t), nil)
	rooms, _ := list["rooms"].([]any)
	if code != http.StatusOK || len(rooms) != 1 {
		t.Fatalf("GET /v1/rooms: %d %v", code, list)
	}
	r0 := rooms[0].(map[string]any)
	if r0["room"] != exam || r0["students"] != 2.0 || r0["proctors"] != 1.0 || r0["node_id"] == "" || r0["started"] == "" {
		t.Errorf("room summary %v", r0)
	}
	testclient.Eventually(t, 15*time.Second, "alice live with a round trip from ICE consent checks", func() bool {
		st, c := participantState(t, srv.base, exam, "alice")
		return st == "live" && c["bitrate_kbps"].(float64) > 0
	})
	// The node's ICE consent checks (every 5 s) give a publisher's round
	// trip.
	testclient.Eventually(t, 15*time.Second, "alice's round trip", func() bool {
		_, c := participantState(t, srv.base, exam, "alice")
		return c["rtt_ms"].(float64) > 0
	})
	if _, c := participantState(t, srv.base, exam, "alice"); c["candidate_type"] != "host" {
		t.Errorf("alice's connection %v, want candidate_type host", c)
	}

	code, ended := api(t, http.MethodDelete, srv.base+"/v1/rooms/"+exam, adminToken(t), nil)
	if code != http.StatusOK || ended["ended"] != 3.0 || ended["room"] != exam {
		t.Fatalf("DELETE: %d %v", code, ended)
	}
	for _, c := range []*testclient.Client{proctor, alice, bob} {
		if m := next(t, c, "leave", nil); m.Reason != room.ReasonRoomEnded {
			t.Errorf("leave reason %q, want room_ended", m.Reason)
		}
	}
	endedAt, err := time.Parse(time.RFC3339, ended["ended_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	n := kinds(roomEvents(t, srv.base, exam))
	if n["admin_action:end_room"] != 1 || n[room.EventRoomClosed] != 1 || n[room.EventLeave] != 3 {
		t.Errorf("trail %v: want one admin_action end_room, room_closed, three leaves", n)
	}
	for _, e := range roomEvents(t, srv.base, exam) {
		if e.Kind == room.EventRoomClosed && (e.Details["reason"] != "ended_by_admin" || e.Actor != "api") {
			t.Errorf("room_closed %+v, want reason ended_by_admin by api", e)
		}
	}
	if code, _ := api(t, http.MethodGet, srv.base+"/v1/rooms/"+exam, adminToken(t), nil); code != http.StatusNotFound {
		t.Errorf("GET an ended room: %d, want 404", code)
	}
	if got := joinCode(t, srv.base, aliceTok); got != "room_ended" {
		t.Errorf("rejoin with the old token: %q, want room_ended", got)
	}
	if got := joinCode(t, srv.base, issuedAt(t, exam, "carol", endedAt)); got != "room_ended" {
		t.Errorf("a token issued in the second the room ended: %q, want room_ended", got)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	srv = startServe(t, "--api-secret", secret, "--data-dir", dataDir)
	if got := joinCode(t, srv.base, aliceTok); got != "room_ended" {
		t.Errorf("after a restart, the old token: %q, want room_ended", got)
	}
	later := issuedAt(t, exam, "alice", endedAt.Add(time.Second))
	testclient.JoinWith(t, wsURL(srv.base), testclient.Options{Token: later, Identity: "alice", Role: room.RoleStudent})
}

// TestRoomsAPIInterventions: ending one student ends both devices; a
// message reaches one student, then all; a revoked identity is cut off
// and refused on signaling and TURN, still after a restart, and lifting
// the revocation lets it in; every call is an admin_action event.
func TestRoomsAPIInterventions(t *testing.T) {
	dataDir := t.TempDir()
	turnPort := testclient.FreeUDPTCPPort(t)
	args := []string{"--api-secret", secret, "--data-dir", dataDir, "--turn-udp-port", strconv.Itoa(turnPort)}
	srv := startServe(t, args...)
	ws := wsURL(srv.base)
	const exam = "exam-api"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.stderr.String())
		}
	})
	admin := adminToken(t)
	alice := testclient.Join(t, ws, secret, exam, "alice", room.RoleStudent)
	phone := testclient.JoinWith(t, ws, testclient.Options{Identity: "alice", Role: room.RoleStudent,
		Token: testclient.MintWith(t, secret, exam, "alice", room.RoleStudent, map[string]any{"device": "phone"})})
	bob := testclient.Join(t, ws, secret, exam, "bob", room.RoleStudent)
	carol := testclient.Join(t, ws, secret, exam, "carol", room.RoleStudent)

	// A message to bob alone, then to everyone.
	code, body := api(t, http.MethodPost, srv.base+"/v1/rooms/"+exam+"/messages", admin, map[string]any{"to": "bob", "text": "Five minutes left."})
	if code != http.StatusOK || fmt.Sprint(body["to"]) != "[bob]" {
		t.Fatalf("message to bob: %d %v", code, body)
	}
	if m := next(t, bob, "message", nil); m.Text != "Five minutes left." || m.MessageID == 0 {
		t.Errorf("bob's message %+v", m)
	}
	code, body = api(t, http.MethodPost, srv.base+"/v1/rooms/"+exam+"/messages", admin, map[string]any{"text": "Pens down."})
	if code != http.StatusOK || fmt.Sprint(body["to"]) != "[alice bob carol]" {
		t.Fatalf("message to all: %d %v", code, body)
	}
	for _, c := range []*testclient.Client{alice, bob, carol} {
		if m := next(t, c, "message", nil); m.Text != "Pens down." {
			t.Errorf("message %+v, want Pens down.", m)
		}
	}
	if code, body := api(t, http.MethodPost, srv.base+"/v1/rooms/"+exam+"/messages", admin, map[string]any{"to": "nobody", "text": "x"}); code != http.StatusNotFound || body["code"] != "participant_not_found" {
		t.Errorf("message to a stranger: %d %v", code, body)
	}

	// End alice: both her devices.
	code, body = api(t, http.MethodPost, srv.base+"/v1/rooms/"+exam+"/participants/alice/end", admin, map[string]any{"reason": "left the room"})
	if code != http.StatusOK || body["ended"] != 2.0 {
		t.Fatalf("end alice: %d %v", code, body)
	}
	for _, c := range []*testclient.Client{alice, phone} {
		if m := next(t, c, "ended", nil); m.Reason != "left the room" {
			t.Errorf("ended %+v", m)
		}
		if m := next(t, c, "leave", nil); m.Reason != room.ReasonEndedByAdmin {
			t.Errorf("leave %+v, want ended_by_admin", m)
		}
	}

	// Revoke carol for this room: cut off, refused, TURN refused too.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	turnAddr := "127.0.0.1:" + strconv.Itoa(turnPort)
	if err := allocate(t, turnAddr, "carol"); err != nil {
		t.Fatalf("carol's TURN allocation before the revocation: %v", err)
	}
	code, body = api(t, http.MethodPost, srv.base+"/v1/revocations", admin, map[string]any{"identity": "carol", "room": exam, "until": until})
	if code != http.StatusOK || fmt.Sprint(body["rooms"]) != "["+exam+"]" {
		t.Fatalf("revoke carol: %d %v", code, body)
	}
	if m := next(t, carol, "leave", nil); m.Reason != room.ReasonRevoked {
		t.Errorf("carol's leave %+v, want revoked", m)
	}
	if got := joinCode(t, srv.base, testclient.Mint(t, secret, exam, "carol", room.RoleStudent)); got != "revoked" {
		t.Errorf("carol's join: %q, want revoked", got)
	}
	if err := allocate(t, turnAddr, "carol"); err == nil {
		t.Error("carol's TURN allocation succeeded after the revocation")
	}
	if err := allocate(t, turnAddr, "bob"); err != nil {
		t.Errorf("bob's TURN allocation: %v", err)
	}
	code, body = api(t, http.MethodGet, srv.base+"/v1/revocations", admin, nil)
	if rs, _ := body["revocations"].([]any); code != http.StatusOK || len(rs) != 1 || rs[0].(map[string]any)["by"] != "api" {
		t.Errorf("GET revocations: %d %v", code, body)
	}

	// A restart keeps the lockout (data dir).
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
	srv = startServe(t, args...)
	if got := joinCode(t, srv.base, testclient.Mint(t, secret, exam, "carol", room.RoleStudent)); got != "revoked" {
		t.Errorf("after a restart, carol's join: %q, want revoked", got)
	}
	if err := allocate(t, turnAddr, "carol"); err == nil {
		t.Error("after a restart, carol's TURN allocation succeeded")
	}

	// Lift it: carol joins and relays again.
	code, body = api(t, http.MethodDelete, srv.base+"/v1/revocations?identity=carol&room="+exam, admin, nil)
	if code != http.StatusOK || body["lifted"] != true {
		t.Fatalf("lift: %d %v", code, body)
	}
	testclient.Join(t, wsURL(srv.base), secret, exam, "carol", room.RoleStudent)
	if err := allocate(t, turnAddr, "carol"); err != nil {
		t.Errorf("carol's TURN allocation after the lift: %v", err)
	}
	if code, body := api(t, http.MethodDelete, srv.base+"/v1/revocations?identity=carol&room="+exam, admin, nil); code != http.StatusNotFound || body["code"] != "revocation_not_found" {
		t.Errorf("lifting again: %d %v", code, body)
	}

	n := kinds(roomEvents(t, srv.base, exam))
	for action, want := range map[string]int{"message": 2, "end_participant": 1, "revoke": 1, "lift": 1} {
		if n["admin_action:"+action] != want {
			t.Errorf("admin_action %s: %d events, want %d (trail %v)", action, n["admin_action:"+action], want, n)
		}
	}
	if n[room.EventRevoked] != 1 {
		t.Errorf("revoked events %d, want 1", n[room.EventRevoked])
	}
	for _, e := range roomEvents(t, srv.base, exam) {
		if e.Kind == room.EventAdminAction && e.Actor != "api" {
			t.Errorf("admin_action %+v does not name the admin token's subject", e)
		}
	}
}

// allocate makes a TURN allocation at addr with identity's REST
// credentials (as joined hands them out) and releases it.
func allocate(t *testing.T, addr, identity string) error {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u, p := turn.Credentials([]byte(secret), identity, time.Now().Add(time.Minute))
	c, err := pionturn.NewClient(&pionturn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr, Conn: conn,
		Username: u, Password: p, Realm: turn.DefaultRealm,
		LoggerFactory: pionlog.New(slog.New(slog.DiscardHandler), pionlog.Relay, time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		return err
	}
	return relay.Close()
}

// TestRoomsAPIAccess: a student or proctor token on an admin route is
// refused 403 forbidden, no token 401 token_missing, a bad one 401
// token_invalid; a proctor reads its own room, not another.
func TestRoomsAPIAccess(t *testing.T) {
	srv := startServe(t, "--api-secret", secret)
	testclient.Join(t, wsURL(srv.base), secret, "exam-a", "proctor-1", room.RoleProctor)
	student := testclient.Mint(t, secret, "exam-a", "alice", room.RoleStudent)
	proctor := testclient.Mint(t, secret, "exam-a", "proctor-1", room.RoleProctor)
	routes := []struct{ method, path string }{
		{http.MethodGet, "/v1/rooms"},
		{http.MethodDelete, "/v1/rooms/exam-a"},
		{http.MethodPost, "/v1/rooms/exam-a/participants/alice/end"},
		{http.MethodPost, "/v1/rooms/exam-a/messages"},
		{http.MethodPost, "/v1/revocations"},
		{http.MethodGet, "/v1/revocations"},
		{http.MethodDelete, "/v1/revocations?identity=alice&room=exam-a"},
		{http.MethodGet, "/v1/placement?room=exam-a"},
		{http.MethodGet, "/v1/rooms/exam-a/recordings"},
		{http.MethodPost, "/v1/node/drain"},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			for who, tok := range map[string]string{"student": student, "proctor": proctor} {
				if code, body := api(t, r.method, srv.base+r.path, tok, map[string]any{}); code != http.StatusForbidden || body["code"] != "forbidden" {
					t.Errorf("%s token: %d %v, want 403 forbidden", who, code, body)
				}
			}
			if code, body := api(t, r.method, srv.base+r.path, "", nil); code != http.StatusUnauthorized || body["code"] != "token_missing" {
				t.Errorf("no token: %d %v, want 401 token_missing", code, body)
			}
			if code, body := api(t, r.method, srv.base+r.path, "not.a.token", nil); code != http.StatusUnauthorized || body["code"] != "token_invalid" {
				t.Errorf("bad token: %d %v, want 401 token_invalid", code, body)
			}
		})
	}
	if code, body := api(t, http.MethodGet, srv.base+"/v1/rooms/exam-a", proctor, nil); code != http.StatusOK || body["room"] != "exam-a" {
		t.Errorf("the room's proctor reading it: %d %v", code, body)
	}
	for who, tok := range map[string]string{"student": student, "another room's proctor": testclient.Mint(t, secret, "exam-b", "p2", room.RoleProctor)} {
		if code, body := api(t, http.MethodGet, srv.base+"/v1/rooms/exam-a", tok, nil); code != http.StatusForbidden || body["code"] != "forbidden" {
			t.Errorf("%s reading exam-a: %d %v, want 403 forbidden", who, code, body)
		}
	}
	for _, bad := range []map[string]any{
		{"identity": "alice", "room": "exam-a"},
		{"identity": "alice", "room": "exam-a", "until": time.Now().Add(-time.Minute)},
		{"identity": "", "room": "exam-a", "until": time.Now().Add(time.Hour)},
		{"identity": "alice", "room": "exam-a", "until": time.Now().Add(time.Hour), "extra": 1},
	} {
		if code, body := api(t, http.MethodPost, srv.base+"/v1/revocations", adminToken(t), bad); code != http.StatusBadRequest || body["code"] != "malformed" {
			t.Errorf("revocation %v: %d %v, want 400 malformed", bad, code, body)
		}
	}
	if code, body := api(t, http.MethodPost, srv.base+"/v1/rooms/exam-a/messages", adminToken(t), map[string]any{"text": strings.Repeat("x", 3000)}); code != http.StatusBadRequest {
		t.Errorf("a long message: %d %v, want 400", code, body)
	}
}

// TestRoomsAPICluster: three nodes on one real Redis, a room on each.
// GET /v1/rooms from any node lists all three with their nodes; a call
// about a room through a node that does not hold it is forwarded there:
// GET shows the holder's participants, DELETE ends the room (its student
// gets leave room_ended) and the marker, in Redis, refuses the old token
// on every node; a revocation for every room through one node cuts the
// identity off on another.
func TestRoomsAPICluster(t *testing.T) {
	rs := testredis.Start(t, 0)
	ids := []string{"a", "b", "c"}
	bases := map[string]string{}
	for _, id := range ids {
		bases[id] = startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", id).base
	}
	admin := adminToken(t)
	students := map[string]*testclient.Client{}
	tokens := map[string]string{}
	for _, id := range ids {
		tokens[id] = testclient.Mint(t, secret, "exam-"+id, "student-"+id, room.RoleStudent)
		students[id] = testclient.JoinWith(t, wsURL(bases[id]), testclient.Options{Token: tokens[id], Identity: "student-" + id, Role: room.RoleStudent})
	}
	for _, from := range ids {
		testclient.Eventually(t, 10*time.Second, "node "+from+" listing every node's room", func() bool {
			code, body := api(t, http.MethodGet, bases[from]+"/v1/rooms", admin, nil)
			rooms, _ := body["rooms"].([]any)
			if code != http.StatusOK || len(rooms) != 3 {
				return false
			}
			for i, id := range ids {
				r := rooms[i].(map[string]any)
				if r["room"] != "exam-"+id || r["node_id"] != id || r["students"] != 1.0 {
					return false
				}
			}
			return true
		})
	}
	code, body := api(t, http.MethodGet, bases["a"]+"/v1/rooms/exam-c", admin, nil)
	if code != http.StatusOK || body["node_id"] != "c" || len(body["participants"].([]any)) != 1 {
		t.Errorf("GET exam-c through a: %d %v", code, body)
	}
	code, body = api(t, http.MethodDelete, bases["a"]+"/v1/rooms/exam-b", admin, nil)
	if code != http.StatusOK || body["ended"] != 1.0 {
		t.Fatalf("DELETE exam-b through a: %d %v", code, body)
	}
	if m := next(t, students["b"], "leave", nil); m.Reason != room.ReasonRoomEnded {
		t.Errorf("b's student left with %q, want room_ended", m.Reason)
	}
	for _, id := range ids {
		if got := joinCode(t, bases[id], tokens["b"]); got != "room_ended" {
			t.Errorf("the old token of exam-b through %s: %q, want room_ended", id, got)
		}
	}
	until := time.Now().Add(time.Hour)
	code, body = api(t, http.MethodPost, bases["a"]+"/v1/revocations", admin, map[string]any{"identity": "student-c", "room": "*", "until": until})
	if code != http.StatusOK {
		t.Fatalf("revoke student-c through a: %d %v", code, body)
	}
	if m := next(t, students["c"], "leave", nil); m.Reason != room.ReasonRevoked {
		t.Errorf("c's student left with %q, want revoked", m.Reason)
	}
	if got := joinCode(t, bases["b"], testclient.Mint(t, secret, "exam-x", "student-c", room.RoleStudent)); got != "revoked" {
		t.Errorf("student-c joining elsewhere: %q, want revoked", got)
	}
}

// TestRoomsAPIRedisDown: in cluster mode with Redis gone, the rooms API
// answers what a node knows by itself and refuses, 503 unavailable, what
// needs the store (docs/http.md, "While Redis is down"): the
// cluster-wide list, a room held elsewhere, ending a room (its marker
// could not be stored, so nothing is ended), revocations; this node's
// own rooms are still listed, read and messaged.
func TestRoomsAPIRedisDown(t *testing.T) {
	rs := testredis.Start(t, 0)
	a := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "a").base
	b := startServe(t, "--api-secret", secret, "--redis-url", rs.URL(), "--node-id", "b").base
	alice := testclient.Join(t, wsURL(a), secret, "exam-a", "alice", room.RoleStudent)
	testclient.Join(t, wsURL(b), secret, "exam-b", "bob", room.RoleStudent)
	admin := adminToken(t)
	testclient.Eventually(t, 10*time.Second, "a listing both rooms", func() bool {
		code, body := api(t, http.MethodGet, a+"/v1/rooms", admin, nil)
		rooms, _ := body["rooms"].([]any)
		return code == http.StatusOK && len(rooms) == 2
	})
	rs.Stop()

	refused := func(what, method, path string, body any) {
		t.Helper()
		if code, got := api(t, method, a+path, admin, body); code != http.StatusServiceUnavailable || got["code"] != "unavailable" {
			t.Errorf("%s with Redis down: %d %v, want 503 unavailable", what, code, got)
		}
	}
	refused("the cluster-wide list", http.MethodGet, "/v1/rooms", nil)
	refused("a room held by another node", http.MethodGet, "/v1/rooms/exam-b", nil)
	refused("ending this node's room", http.MethodDelete, "/v1/rooms/exam-a", nil)
	refused("a revocation", http.MethodPost, "/v1/revocations", map[string]any{"identity": "alice", "room": "exam-a", "until": time.Now().Add(time.Hour)})
	refused("the revocations", http.MethodGet, "/v1/revocations", nil)

	code, body := api(t, http.MethodGet, a+"/v1/rooms?scope=node", admin, nil)
	if rooms, _ := body["rooms"].([]any); code != http.StatusOK || len(rooms) != 1 || rooms[0].(map[string]any)["room"] != "exam-a" {
		t.Errorf("this node's list with Redis down: %d %v, want exam-a", code, body)
	}
	if code, body := api(t, http.MethodGet, a+"/v1/rooms/exam-a", admin, nil); code != http.StatusOK || len(body["participants"].([]any)) != 1 {
		t.Errorf("this node's room with Redis down: %d %v, want alice in it", code, body)
	}
	if code, body := api(t, http.MethodPost, a+"/v1/rooms/exam-a/messages", admin, map[string]any{"to": "alice", "text": "Still here."}); code != http.StatusOK {
		t.Errorf("a message in this node's room with Redis down: %d %v", code, body)
	}
	if m := next(t, alice, "message", nil); m.Text != "Still here." {
		t.Errorf("alice got %+v, want the message", m)
	}

	// Redis back: go-redis probes a lost server from a goroutine every
	// second until a dial succeeds, which the package's leak check would
	// find if the nodes stopped first.
	testredis.Start(t, rs.Port)
	testclient.Eventually(t, 10*time.Second, "go-redis's redial probes done", func() bool {
		buf := make([]byte, 1<<20)
		return !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("(*ConnPool).tryDial"))
	})
}
