package record

import (
	"errors"
	"net/http"
	"os"
	"strings"

	"github.com/invigil/invigil/internal/httpapi"
)

// KeySource gives the public keys that verify manifests: this node's, or
// with a cluster every node's, retired ones included.
type KeySource func(r *http.Request) (*Keyring, error)

// RegisterAPI adds the recordings API to t: the room's sessions, one
// file of a session (with HTTP Range, so a player seeks), and the keys
// that verify manifests (public: a verifier needs no token).
func RegisterAPI(t *httpapi.Routes, r *Recorder, keys KeySource) {
	t.Handle("GET /v1/rooms/{room}/recordings", httpapi.Reviewer(), "the room's recordings (signed manifests), oldest first", listHandler(r))
	t.Handle("GET /v1/rooms/{room}/recordings/{session}/{file}", httpapi.Reviewer(), "one file of a recorded session (segment or manifest), with HTTP Range", fileHandler(r))
	t.Handle("GET /v1/recordings/keys", httpapi.Public(), "the public keys that verify manifests, retired ones included", keysHandler(keys))
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
			listFailed(w, r, name, err)
			return
		}
		if ms == nil {
			ms = []*Manifest{}
		}
		httpapi.WriteJSON(w, map[string]any{"recordings": ms})
	})
}

// fileHandler serves one file a session's manifest lists, or the
// manifest itself (<session>.manifest.json, its stored bytes, which is
// what a signature is checked over). A file the manifest does not list
// is not served, whatever lies in the directory. A session another node
// holds (the Index says so) is served by that node: the call is
// forwarded there.
func fileHandler(r *Recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		roomName, session, file := req.PathValue("room"), req.PathValue("session"), req.PathValue("file")
		if !safeName(roomName) {
			httpapi.Fail(w, httpapi.CodeMalformed, "the room name cannot name a recording directory")
			return
		}
		ms, err := r.List(req.Context(), roomName)
		if err != nil {
			listFailed(w, r, roomName, err)
			return
		}
		var m *Manifest
		for _, c := range ms {
			if c.Session == session {
				m = c
				break
			}
		}
		if m == nil {
			httpapi.Fail(w, httpapi.CodeRecordingNotFound, "no recorded session "+session+" in this room")
			return
		}
		if m.held != "" && r.cfg.Forward != nil && r.cfg.Forward(w, req, m.held) {
			return // the node that recorded it answered
		}
		typ, modified := "application/json", m.Ended
		if file != m.Session+ManifestSuffix {
			i := listed(m, file)
			if i < 0 {
				httpapi.Fail(w, httpapi.CodeRecordingNotFound, "the session's manifest lists no file "+file)
				return
			}
			typ, modified = m.Files[i].Type, m.Files[i].End
			if typ == "" {
				typ = "video/webm" // version 1
			}
			w.Header().Set("ETag", `"`+m.Files[i].SHA256+`"`)
		}
		f, err := r.Open(req.Context(), roomName, m.Identity, file)
		switch {
		case errors.Is(err, os.ErrNotExist):
			httpapi.Fail(w, httpapi.CodeRecordingNotFound, "the file is listed but neither on this node's disk nor in the store")
			return
		case err != nil:
			r.log.Error("opening a recording", "room", roomName, "session", session, "file", file, "err", err)
			httpapi.Fail(w, httpapi.CodeInternal, "the recording could not be opened")
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", typ)
		w.Header().Set("Cache-Control", "private, no-store")
		http.ServeContent(w, req, file, modified, f)
	})
}

// listFailed answers a listing that failed: unavailable (retry) when the
// cluster's index could not be read, else internal (a store fault, whose
// text stays on the server).
func listFailed(w http.ResponseWriter, r *Recorder, room string, err error) {
	if errors.Is(err, ErrIndexUnavailable) {
		r.log.Warn("recordings not listed", "room", room, "err", err)
		httpapi.Fail(w, httpapi.CodeUnavailable, "the cluster store (Redis) cannot list the recordings; retry shortly")
		return
	}
	r.log.Error("recordings not listed", "room", room, "err", err)
	httpapi.Fail(w, httpapi.CodeInternal, "the recordings could not be listed")
}

// listed is the index of file among m's files, -1 if absent.
func listed(m *Manifest, file string) int {
	for i, f := range m.Files {
		if f.Name == file && !strings.ContainsAny(file, `/\`) {
			return i
		}
	}
	return -1
}

func keysHandler(keys KeySource) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		k, err := keys(req)
		if err != nil {
			httpapi.Fail(w, httpapi.CodeUnavailable, "the cluster's keys could not be read: "+err.Error())
			return
		}
		b, err := k.JSON()
		if err != nil {
			httpapi.Fail(w, httpapi.CodeInternal, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = w.Write(append(b, '\n'))
	})
}
