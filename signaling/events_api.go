package signaling

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/invigil/invigil/room"
)

// Page sizes of GET /v1/rooms/{room}/events.
const (
	defaultEventsPage = 1000
	maxEventsPage     = 10000
)

// RequireAdmin passes requests bearing an admin token
// ("Authorization: Bearer <token>") to h and refuses the rest with 401
// or 403.
func RequireAdmin(secret []byte, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, ok := bearer(w, r, secret)
		if !ok {
			return
		}
		if g.Role != room.RoleAdmin {
			httpError(w, http.StatusForbidden, CodeForbidden, "this needs an admin token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// bearer verifies the request's bearer token, answering 401 itself when
// it is missing or bad.
func bearer(w http.ResponseWriter, r *http.Request, secret []byte) (Grant, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		httpError(w, http.StatusUnauthorized, CodeTokenMissing, "send the token as Authorization: Bearer <token>")
		return Grant{}, false
	}
	g, err := VerifyToken(secret, strings.TrimSpace(tok))
	if err != nil {
		code, msg := wireError(err)
		httpError(w, http.StatusUnauthorized, code, msg)
		return Grant{}, false
	}
	return g, true
}

// EventsHandler serves GET /v1/rooms/{room}/events?after=SEQ&limit=N: the
// room's audit events, oldest first, to an admin token or a token of a
// proctor of that room, given as "Authorization: Bearer <token>" (never
// in the URL, where proxies and logs would keep it).
func EventsHandler(secret []byte, store room.EventStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		roomName := r.PathValue("room")
		g, ok := bearer(w, r, secret)
		if !ok {
			return
		}
		if g.Role != room.RoleAdmin && !(g.Role == room.RoleProctor && g.Room == roomName) {
			httpError(w, http.StatusForbidden, CodeForbidden, "only an admin or this room's proctor reads its events")
			return
		}
		after, err := queryInt(r, "after", 0)
		if err != nil || after < 0 {
			httpError(w, http.StatusBadRequest, CodeMalformed, "after must be a sequence number ≥ 0")
			return
		}
		limit, err := queryInt(r, "limit", defaultEventsPage)
		if err != nil || limit < 1 || limit > maxEventsPage {
			httpError(w, http.StatusBadRequest, CodeMalformed, "limit must be between 1 and 10000")
			return
		}
		events, err := store.List(r.Context(), roomName, after, int(limit))
		if err != nil {
			httpError(w, http.StatusInternalServerError, CodeInternal, "events could not be read")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(struct {
			Events []room.Event `json:"events"`
		}{events})
	})
}

func queryInt(r *http.Request, key string, def int64) (int64, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errors.New("not a number")
	}
	return n, nil
}

// httpError writes the JSON error shape of the signaling protocol.
func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}
