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
		ms, err := r.List(req.Context(), req.PathValue("room"))
		if err != nil {
			httpapi.Fail(w, httpapi.CodeMalformed, err.Error())
			return
		}
		if ms == nil {
			ms = []*Manifest{}
		}
		httpapi.WriteJSON(w, map[string]any{"recordings": ms})
	})
}
