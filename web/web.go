package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

// assets holds the pages, the SDK and the static files, read-only.
//
//go:embed assets
var assets embed.FS

// pageCSP is the Content-Security-Policy of the HTML pages: scripts, styles,
// images and connections (the signaling WebSocket; CSP Level 3 'self' covers
// ws/wss to the same host) come only from this origin; media elements may
// play blob: and mediastream: sources (camera self-view, remote tracks).
// Nothing may be framed or posted. frame-ancestors is left open on purpose:
// exam platforms may embed the pages in an iframe (see docs/sdk.md).
const pageCSP = "default-src 'none'; " +
	"script-src 'self'; " +
	"style-src 'self'; " +
	"img-src 'self' data:; " +
	"media-src 'self' blob: mediastream:; " +
	"connect-src 'self'; " +
	"base-uri 'none'; " +
	"form-action 'none'; " +
	"frame-src 'none'; " +
	"object-src 'none'"

// pagePermissions limits powerful features to this origin and to what the
// pages use.
const pagePermissions = "camera=(self), microphone=(self), display-capture=(self), geolocation=(), payment=(), usb=()"

// contentType is the media type of an asset by name. A module script is
// always decoded as UTF-8, so JavaScript needs no charset. A TypeScript
// declaration file has no registered type; application/typescript is what
// TypeScript tooling that fetches by URL (Deno) expects, and it keeps
// mime's .ts guess (video/mp2t) away.
func contentType(name string) string {
	if strings.HasSuffix(name, ".d.ts") {
		return "application/typescript; charset=utf-8"
	}
	ext := path.Ext(name)
	switch ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	case ".json":
		return "application/json"
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// file is one servable asset, read once when the handler is built.
type file struct {
	body        []byte
	contentType string
	etag        string
	page        bool   // an HTML page: gets the CSP
	crossOrigin bool   // importable from other origins (the SDK)
	types       string // X-TypeScript-Types, or ""
}

// handler serves the embedded files by exact path. Its map is built in
// Handler and never written afterwards, so it needs no lock.
type handler struct {
	files map[string]file
	csp   string
}

var _ http.Handler = (*handler)(nil)

// Handler returns the handler for GET/HEAD /student, /proctor, /sdk/… (the
// SDK's entry /sdk/invigil.js, the modules it imports and invigil.d.ts)
// and /static/…; any other path is 404 and any other method 405. Mount it
// at the root of the server's mux (it matches full paths).
func Handler() http.Handler { return HandlerWith(Options{}) }

// Options vary what the pages may do.
type Options struct {
	// ConnectSources are added to the pages' CSP connect-src: in cluster
	// mode a page follows a redirect to the node holding its room, on
	// another origin, so the node passes "wss:" (and "ws:" for plain HTTP
	// nodes). Scripts still come only from this origin.
	ConnectSources []string
}

// HandlerWith serves the pages, the SDK and the static files.
func HandlerWith(opts Options) http.Handler {
	csp := pageCSP
	if len(opts.ConnectSources) > 0 {
		csp = strings.Replace(csp, "connect-src 'self';", "connect-src 'self' "+strings.Join(opts.ConnectSources, " ")+";", 1)
	}
	h := &handler{files: make(map[string]file), csp: csp}
	h.add("/student", "assets/student.html")
	h.add("/proctor", "assets/proctor.html")
	h.add("/review", "assets/review.html")
	h.addTree("/sdk/", "assets/sdk")
	h.addTree("/static/", "assets/static")
	return h
}

// addTree registers every file under dir at prefix + its path below dir.
// The tree is fixed at build time, so walking it cannot fail at run time;
// web_test.go checks that every path is served.
func (h *handler) addTree(prefix, dir string) {
	_ = fs.WalkDir(assets, dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		h.add(prefix+strings.TrimPrefix(name, dir+"/"), name)
		return nil
	})
}

// add registers the embedded file name under urlPath. A name missing from
// the embedded tree is skipped (the path then 404s, which web_test.go
// catches).
func (h *handler) add(urlPath, name string) {
	body, err := assets.ReadFile(name)
	if err != nil {
		return
	}
	sum := sha256.Sum256(body)
	h.files[urlPath] = file{
		body:        body,
		contentType: contentType(name),
		etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		page:        path.Ext(name) == ".html",
		// An exam platform imports the SDK from its own origin: a module
		// script and everything it imports are fetched in CORS mode.
		crossOrigin: strings.HasPrefix(urlPath, "/sdk/"),
		types:       typesOf(urlPath),
	}
}

// sdkEntry is the SDK's entry module, and sdkTypes its declarations.
const (
	sdkEntry = "/sdk/invigil.js"
	sdkTypes = "./invigil.d.ts"
)

// typesOf is the X-TypeScript-Types header of urlPath: the entry module
// names its declarations, relative to itself, for tools that type a module
// by URL (Deno, esm.sh's convention).
func typesOf(urlPath string) string {
	if urlPath == sdkEntry {
		return sdkTypes
	}
	return ""
}

// ServeHTTP serves one embedded file with its headers.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := h.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", f.etag)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if f.page {
		hdr.Set("Content-Security-Policy", h.csp)
		hdr.Set("Permissions-Policy", pagePermissions)
	}
	if f.crossOrigin {
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	}
	if f.types != "" {
		hdr.Set("X-TypeScript-Types", f.types)
	}
	// ServeContent answers If-None-Match with 304 and handles HEAD and Range.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
