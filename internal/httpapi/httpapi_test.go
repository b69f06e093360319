package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/doctable"
	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/room"
	"github.com/invigil/invigil/signaling"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "httpapi-test-secret-0123456789abcdef"

// mint signs a token that expires after ttl (before now when negative).
func mint(t *testing.T, roomName, identity string, role room.Role, ttl time.Duration) string {
	t.Helper()
	tok, err := signaling.MintToken([]byte(secret), signaling.TokenSpec{Room: roomName, Identity: identity, Role: role, Expires: time.Now().Add(ttl)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestRoutes: each route's access is checked before its handler, with
// the node's own token verifier; refusals and misses are in the one
// error shape with their codes; the table lists what was registered.
func TestRoutes(t *testing.T) {
	routes := httpapi.NewRoutes(signaling.BearerVerifier([]byte(secret)))
	echo := func(w http.ResponseWriter, r *http.Request) {
		g, ok := httpapi.GrantOf(r)
		httpapi.WriteJSON(w, map[string]any{"identity": g.Identity, "guarded": ok})
	}
	routes.HandleFunc("GET /open", httpapi.Public(), "open", echo)
	routes.HandleFunc("GET /v1/admin", httpapi.Admin(), "admins", echo)
	routes.HandleFunc("GET /v1/rooms/{room}/thing", httpapi.AdminOrProctor(), "the room's", echo)
	srv := httptest.NewServer(routes)
	defer srv.Close()

	admin := mint(t, "*", "api", room.RoleAdmin, time.Minute)
	proctor := mint(t, "exam-1", "p1", room.RoleProctor, time.Minute)
	for _, tc := range []struct {
		name, method, path, token string
		status                    int
		code                      string // "" when the call succeeds
	}{
		{"public, no token", "GET", "/open", "", 200, ""},
		{"admin route, no token", "GET", "/v1/admin", "", 401, httpapi.CodeTokenMissing},
		{"admin route, forged token", "GET", "/v1/admin", "a.b.c", 401, httpapi.CodeTokenInvalid},
		{"admin route, expired token", "GET", "/v1/admin", mint(t, "*", "api", room.RoleAdmin, -time.Minute), 401, httpapi.CodeTokenExpired},
		{"admin route, proctor token", "GET", "/v1/admin", proctor, 403, httpapi.CodeForbidden},
		{"admin route, admin token", "GET", "/v1/admin", admin, 200, ""},
		{"room route, its proctor", "GET", "/v1/rooms/exam-1/thing", proctor, 200, ""},
		{"room route, another room's proctor", "GET", "/v1/rooms/exam-2/thing", proctor, 403, httpapi.CodeForbidden},
		{"room route, a student", "GET", "/v1/rooms/exam-1/thing", mint(t, "exam-1", "s1", room.RoleStudent, time.Minute), 403, httpapi.CodeForbidden},
		{"room route, admin", "GET", "/v1/rooms/exam-2/thing", admin, 200, ""},
		{"no such API route", "GET", "/v1/nothing", admin, 404, httpapi.CodeNotFound},
		{"wrong method", "DELETE", "/v1/admin", admin, 405, httpapi.CodeMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("HTTP %d, body not JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("HTTP %d %v, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.code == "" {
				if guarded := body["guarded"]; guarded != (tc.token != "") {
					t.Errorf("handler saw a grant: %v, want %v", guarded, tc.token != "")
				}
				return
			}
			if body["code"] != tc.code || body["message"] == "" || len(body) != 2 {
				t.Errorf("error body %v, want {code: %s, message}", body, tc.code)
			}
			if tc.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without an Allow header")
			}
		})
	}
	if n := len(routes.List()); n != 3 {
		t.Errorf("table lists %d routes, want 3", n)
	}
	if got := routes.List()[2].Access.String(); got != "admin, or the room's proctor" {
		t.Errorf("access name %q", got)
	}
}

// TestRouteTwice: registering a pattern twice is a wiring mistake.
func TestRouteTwice(t *testing.T) {
	routes := httpapi.NewRoutes(signaling.BearerVerifier([]byte(secret)))
	h := func(http.ResponseWriter, *http.Request) {}
	routes.HandleFunc("GET /x", httpapi.Public(), "x", h)
	defer func() {
		if recover() == nil {
			t.Error("the second registration of GET /x did not panic")
		}
	}()
	routes.HandleFunc("GET /x", httpapi.Admin(), "x again", h)
}

// TestCodesDocumented: docs/http.md lists every code with its status,
// and nothing else.
func TestCodesDocumented(t *testing.T) {
	rows, err := doctable.ByCode("../../docs/http.md", "## Errors", 3) // `code` | status | when
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]int{}
	for code, r := range rows {
		status, err := strconv.Atoi(r[1])
		if err != nil {
			t.Fatalf("docs/http.md row %q: the status is not a number", r)
		}
		documented[code] = status
	}
	codes := httpapi.Codes()
	for code, status := range codes {
		if documented[code] != status {
			t.Errorf("code %s (HTTP %d) is documented with status %d", code, status, documented[code])
		}
	}
	for code := range documented {
		if _, ok := codes[code]; !ok {
			t.Errorf("docs/http.md lists %s, which no API answers", code)
		}
	}
}
