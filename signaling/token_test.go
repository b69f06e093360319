package signaling

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/invigil/invigil/internal/testclient"
	"github.com/invigil/invigil/room"
)

// signed makes a token with arbitrary claims and method, for the cases
// MintToken refuses to make.
func signed(t *testing.T, method jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": "alice", "room": "exam-1", "role": "student", "name": "Alice",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if mod != nil {
		mod(c)
	}
	return c
}

func TestVerifyToken(t *testing.T) {
	key := []byte(testSecret)
	hs256 := jwt.SigningMethodHS256
	cases := []struct {
		name  string
		token string
		want  error // nil: valid
	}{
		{"valid", signed(t, hs256, key, claims(nil)), nil},
		{"missing", "", ErrTokenMissing},
		{"garbage", "not.a.jwt", ErrTokenInvalid},
		{"bad signature", signed(t, hs256, []byte("another-secret-0123456789abcdef0123"), claims(nil)), ErrTokenInvalid},
		{"alg none", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), ErrTokenInvalid},
		{"alg HS512", signed(t, jwt.SigningMethodHS512, key, claims(nil)), ErrTokenInvalid},
		{"expired", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), ErrTokenExpired},
		{"no exp", signed(t, hs256, key, claims(func(c jwt.MapClaims) { delete(c, "exp") })), ErrTokenInvalid},
		{"not yet valid", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), ErrTokenNotYetValid},
		{"unknown role", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["role"] = "superuser" })), room.ErrUnknownRole},
		{"no subject", signed(t, hs256, key, claims(func(c jwt.MapClaims) { delete(c, "sub") })), ErrTokenInvalid},
		{"student for all rooms", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["room"] = "*" })), ErrTokenInvalid},
		{"proctor for all rooms", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["room"] = "*"; c["role"] = "proctor" })), ErrTokenInvalid},
		{"admin of one room", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["role"] = "admin" })), ErrTokenInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := VerifyToken(key, tc.token)
			if tc.want == nil {
				if err != nil || g.Identity != "alice" || g.Role != room.RoleStudent || g.Room != "exam-1" || g.Name != "Alice" {
					t.Fatalf("got %+v, %v", g, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), testSecret) || (tc.token != "" && strings.Contains(err.Error(), tc.token)) {
				t.Errorf("error %q leaks the secret or the token", err)
			}
		})
	}
}

func TestMintTokenRoundTrip(t *testing.T) {
	tok, err := MintToken([]byte(testSecret), TokenSpec{Room: "*", Identity: "api", Role: room.RoleAdmin, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	g, err := VerifyToken([]byte(testSecret), tok)
	if err != nil || g.Role != room.RoleAdmin || g.Room != AllRooms || time.Until(g.Expires) > time.Minute {
		t.Fatalf("got %+v, %v", g, err)
	}
	if _, err := MintToken([]byte(testSecret), TokenSpec{Room: "r", Identity: "i", Role: "king", TTL: time.Minute}); !errors.Is(err, room.ErrUnknownRole) {
		t.Errorf("minting an unknown role: %v", err)
	}
}

// TestJoinRefusals sends each bad token (and each full-room case) over a
// real WebSocket and checks the documented code and the close.
func TestJoinRefusals(t *testing.T) {
	srv := newTestServer(t, room.Config{MaxPerRoom: 2, MaxPerNode: 3})
	key := []byte(testSecret)
	hs256 := jwt.SigningMethodHS256

	// Fill: room "full" holds 2; the node holds 3 in all.
	srv.join(t, "full", "s1", room.RoleStudent)
	srv.join(t, "full", "s2", room.RoleStudent)
	srv.join(t, "other", "s3", room.RoleStudent)

	cases := []struct {
		name, token, room, code string
	}{
		{"bad signature", signed(t, hs256, []byte("wrong-secret-0123456789abcdef012345"), claims(nil)), "", CodeTokenInvalid},
		{"alg none", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), "", CodeTokenInvalid},
		{"expired", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), "", CodeTokenExpired},
		{"not yet valid", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), "", CodeTokenNotYetValid},
		{"wrong room", signed(t, hs256, key, claims(nil)), "exam-2", CodeRoomMismatch},
		{"unknown role", signed(t, hs256, key, claims(func(c jwt.MapClaims) { c["role"] = "examiner" })), "", CodeRoleUnknown},
		{"no token", "", "", CodeTokenMissing},
		{"admin joins media", mint(t, "*", "api", room.RoleAdmin), "", CodeForbidden},
		{"reviewer joins media", mint(t, "exam-1", "rev", room.RoleReviewer), "", CodeForbidden},
		{"reviewer of every room joins media", mint(t, "*", "rev", room.RoleReviewer), "", CodeForbidden},
		{"room full", mint(t, "full", "s4", room.RoleStudent), "", CodeRoomFull},
		{"node full", mint(t, "third", "s5", room.RoleStudent), "", CodeNodeFull},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testclient.Dial(t, srv.url)
			testclient.Send(t, c, map[string]any{"v": 1, "type": "join", "token": tc.token, "room": tc.room, "id": "j"})
			m, err := testclient.Recv(c, 5*time.Second)
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			if m.Type != TypeError || m.Code != tc.code || m.Ref != "j" {
				t.Fatalf("got %+v, want error %s", m, tc.code)
			}
			if tc.token != "" && strings.Contains(m.Message, tc.token) {
				t.Errorf("error message echoes the token")
			}
			testclient.AssertClosed(t, c)
		})
	}
}
