package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/invigil/invigil/room"
)

// Grant is what a verified bearer token says about its bearer.
type Grant struct {
	Identity string
	// Name is the token's display name (its sub when it has none).
	Name string
	// Room is the token's room claim; "*" for an admin.
	Room string
	Role room.Role
}

// Verifier checks a bearer token. A refusal is an *Error (401 with the
// token's code); signaling.BearerVerifier is the node's.
type Verifier func(token string) (Grant, error)

// Access says who may call a route. Its name is what docs/http.md's
// "who" column says.
type Access struct {
	name string
	// allow is nil for a route anyone may call (no token is read).
	allow func(g Grant, r *http.Request) bool
	// refusal is the message of the 403.
	refusal string
}

// String is the access's name in the route table.
func (a Access) String() string { return a.name }

// Public routes need no token: pages, health, metrics, and /v1/rtc,
// whose token comes in its first message.
func Public() Access { return Access{name: "anyone"} }

// Admin routes need an admin token (the API tier's).
func Admin() Access {
	return Access{name: "admin", refusal: "this needs an admin token",
		allow: func(g Grant, _ *http.Request) bool { return g.Role == room.RoleAdmin }}
}

// AdminOrProctor routes need an admin token or a proctor token of the
// room the path's {room} names.
func AdminOrProctor() Access {
	return Access{name: "admin, or the room's proctor", refusal: "only an admin or this room's proctor may do this",
		allow: func(g Grant, r *http.Request) bool {
			return g.Role == room.RoleAdmin || g.Role == room.RoleProctor && g.Room == r.PathValue("room")
		}}
}

// Reviewer routes need an admin token, or a reviewer token of the
// path's {room} or of every room ("*"): the evidence after an exam.
func Reviewer() Access {
	return Access{name: "admin or reviewer", refusal: "only an admin or a reviewer of this room may read this",
		allow: func(g Grant, r *http.Request) bool {
			return g.Role == room.RoleAdmin || g.Role == room.RoleReviewer && (g.Room == "*" || g.Room == r.PathValue("room"))
		}}
}

// ReviewerOrProctor routes are Reviewer's, and also the room's proctor's
// (the room's trail, which a proctor follows live).
func ReviewerOrProctor() Access {
	rev, prox := Reviewer(), AdminOrProctor()
	return Access{name: "admin, the room's proctor, or a reviewer", refusal: "only an admin, this room's proctor or a reviewer of it may read this",
		allow: func(g Grant, r *http.Request) bool { return rev.allow(g, r) || prox.allow(g, r) }}
}

// grantKey is the context key of a request's Grant.
type grantKey struct{}

// GrantOf returns the Grant a route's access check verified, false on a
// Public route.
func GrantOf(r *http.Request) (Grant, bool) {
	g, ok := r.Context().Value(grantKey{}).(Grant)
	return g, ok
}

// guard wraps h with a's check: the bearer token verified (401 when it is
// missing or bad), its grant allowed (403 when not), then h with the
// grant in the request's context.
func guard(a Access, verify Verifier, h http.Handler) http.Handler {
	if a.allow == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			Fail(w, CodeTokenMissing, "send the token as Authorization: Bearer <token>")
			return
		}
		g, err := verify(strings.TrimSpace(tok))
		if err != nil {
			WriteError(w, err)
			return
		}
		if !a.allow(g, r) {
			Fail(w, CodeForbidden, a.refusal)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), grantKey{}, g)))
	})
}
