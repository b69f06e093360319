package record

import (
	"net/http"

	"github.com/invigil/invigil/internal/httpapi"
)

// RegisterAPI adds the recordings API to t: GET /v1/rooms/{room}/recordings,
// for admins: the room's manifests, oldest first.
func RegisterAPI(t *httpapi.Routes, r *Recorder) {
	t.Handle("GET /v1/rooms/{room}/recordings", httpapi.Admin(), "the room's recordings (signed manifests), oldest first", listHandler(r))
}

func listHandler(r *Recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("room")
		if !safeName(name) {
			httpapi.Fail(w, httpapi.CodeMalformed, "the room name cannot name a recording directory")
			return
		}
		ms, err := r.List(req.Context(), name)
		if err != nil {
			// A store fault: its text stays on the server.
			r.log.Error("recordings not listed", "room", name, "err", err)
			httpapi.Fail(w, httpapi.CodeInternal, "the recordings could not be listed")
			return
		}
		if ms == nil {
			ms = []*Manifest{}
		}
		httpapi.WriteJSON(w, map[string]any{"recordings": ms})
	})
}
