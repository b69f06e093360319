package audit

import (
	"net/http"
	"strconv"

	"github.com/invigil/invigil/internal/httpapi"
	"github.com/invigil/invigil/room"
)

// Page sizes of GET /v1/rooms/{room}/events.
const (
	defaultEventsPage = 1000
	maxEventsPage     = 10000
)

// RegisterAPI adds the events API to t: GET /v1/rooms/{room}/events,
// for an admin or a proctor of that room. The token comes as
// "Authorization: Bearer <token>", never in the URL, where proxies and
// logs would keep it.
func RegisterAPI(t *httpapi.Routes, store Store) {
	t.Handle("GET /v1/rooms/{room}/events", httpapi.ReviewerOrProctor(), "the room's audit events, oldest first", eventsHandler(store))
}

// eventsHandler serves ?after=SEQ&limit=N: the room's events with a
// larger seq, oldest first, at most limit of them.
func eventsHandler(store Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, err := queryInt(r, "after", 0)
		if err != nil || after < 0 {
			httpapi.Fail(w, httpapi.CodeMalformed, "after must be a sequence number ≥ 0")
			return
		}
		limit, err := queryInt(r, "limit", defaultEventsPage)
		if err != nil || limit < 1 || limit > maxEventsPage {
			httpapi.Fail(w, httpapi.CodeMalformed, "limit must be between 1 and 10000")
			return
		}
		events, err := store.List(r.Context(), r.PathValue("room"), after, int(limit))
		if err != nil {
			httpapi.Fail(w, httpapi.CodeInternal, "events could not be read")
			return
		}
		httpapi.WriteJSON(w, struct {
			Events []room.Event `json:"events"`
		}{events})
	})
}

// queryInt reads an integer query parameter, def when it is absent.
func queryInt(r *http.Request, key string, def int64) (int64, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return def, nil
	}
	return strconv.ParseInt(v, 10, 64)
}
