package cluster

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/invigil/invigil/internal/httpapi"
)

// placeTimeout bounds the store's work for one placement request.
const placeTimeout = 2 * time.Second

// maxRoomName bounds a room name in a placement request.
const maxRoomName = 128

// RegisterAPI adds the placement API to t: GET /v1/placement?room=R
// [&expected=N], for admins (the API tier). onStoreError, if set, is
// told of each failure to reach the store.
func RegisterAPI(t *httpapi.Routes, c Cluster, onStoreError func()) {
	if onStoreError == nil {
		onStoreError = func() {}
	}
	t.Handle("GET /v1/placement", httpapi.Admin(), "the node that holds a room, assigning one if none does", placementHandler(c, onStoreError))
}

// placementHandler answers the room's owner, or the node it is assigned
// to now.
func placementHandler(c Cluster, onStoreError func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		roomName := r.URL.Query().Get("room")
		if roomName == "" || len(roomName) > maxRoomName {
			httpapi.Fail(w, httpapi.CodeMalformed, "room is required (at most 128 bytes)")
			return
		}
		expected := 0
		if e := r.URL.Query().Get("expected"); e != "" {
			n, err := strconv.Atoi(e)
			if err != nil || n < 0 || n > 100_000 {
				httpapi.Fail(w, httpapi.CodeMalformed, "expected must be a number of seats")
				return
			}
			expected = n
		}
		ctx, cancel := context.WithTimeout(r.Context(), placeTimeout)
		defer cancel()
		p, err := c.Place(ctx, roomName, expected)
		switch {
		case errors.Is(err, ErrNoCapacity):
			httpapi.Fail(w, httpapi.CodeNoCapacity, "no ready node has room for "+strconv.Itoa(expected)+" more seats")
		case errors.Is(err, ErrUnavailable):
			onStoreError()
			httpapi.Fail(w, httpapi.CodeUnavailable, "the cluster store (Redis) is unreachable; rooms in progress are not affected; retry shortly")
		case err != nil:
			httpapi.Fail(w, httpapi.CodeInternal, "placement failed")
		default:
			httpapi.WriteJSON(w, p)
		}
	})
}
