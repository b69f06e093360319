package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Route is one entry of the route table.
type Route struct {
	// Pattern is the http.ServeMux pattern: "GET /v1/rooms/{room}/events".
	Pattern string
	// Access is who may call it.
	Access Access
	// Summary says what it does, in a few words.
	Summary string
}

// Routes is a node's route table: every handler is registered through
// Handle, which puts its access check in front of it and its row in the
// table. It serves as the node's http.Handler; an API path (under /v1/)
// no route matches is answered in the one error shape.
type Routes struct {
	verify Verifier
	mux    *http.ServeMux
	routes []Route
}

// NewRoutes returns an empty table whose guarded routes verify tokens
// with verify.
func NewRoutes(verify Verifier) *Routes {
	return &Routes{verify: verify, mux: http.NewServeMux()}
}

// Handle registers h for pattern behind access. It panics, as
// http.ServeMux does, on a pattern registered twice: that is a wiring
// mistake found by the first test that builds the node.
func (t *Routes) Handle(pattern string, access Access, summary string, h http.Handler) {
	if slices.ContainsFunc(t.routes, func(r Route) bool { return r.Pattern == pattern }) {
		panic(fmt.Sprintf("httpapi: route %q registered twice", pattern))
	}
	t.mux.Handle(pattern, guard(access, t.verify, h))
	t.routes = append(t.routes, Route{Pattern: pattern, Access: access, Summary: summary})
}

// HandleFunc is Handle for a function.
func (t *Routes) HandleFunc(pattern string, access Access, summary string, h func(http.ResponseWriter, *http.Request)) {
	t.Handle(pattern, access, summary, http.HandlerFunc(h))
}

// List returns the table in registration order.
func (t *Routes) List() []Route { return slices.Clone(t.routes) }

// ServeHTTP dispatches r to its route.
func (t *Routes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		if _, pattern := t.mux.Handler(r); pattern == "" {
			// ServeMux's own 404 or 405 (with its Allow header), in
			// the API's error shape instead of plain text.
			t.mux.ServeHTTP(&shapedMiss{ResponseWriter: w}, r)
			return
		}
	}
	t.mux.ServeHTTP(w, r)
}

// shapedMiss turns ServeMux's plain-text 404 and 405 into the error
// shape, dropping the text that follows; any other answer (a redirect
// to a path's canonical form) passes through.
type shapedMiss struct {
	http.ResponseWriter
	shaped, through bool
}

func (m *shapedMiss) WriteHeader(status int) {
	if m.shaped || m.through {
		return
	}
	switch status {
	case http.StatusNotFound:
		m.shaped = true
		WriteError(m.ResponseWriter, &Error{Status: status, Code: CodeNotFound, Message: "no such API route"})
	case http.StatusMethodNotAllowed:
		m.shaped = true
		WriteError(m.ResponseWriter, &Error{Status: status, Code: CodeMethodNotAllowed, Message: "the route does not take this method; see the Allow header"})
	default:
		m.through = true
		m.ResponseWriter.WriteHeader(status)
	}
}

func (m *shapedMiss) Write(b []byte) (int, error) {
	if !m.shaped && !m.through {
		m.WriteHeader(http.StatusOK)
	}
	if m.shaped {
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}
