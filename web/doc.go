// Package web owns what Invigil serves to browsers: the student page, the
// proctor page and the browser SDK (ES modules behind one entry an exam
// platform imports into its own pages, typed by a .d.ts beside it). The
// files live under assets/ as plain HTML, CSS and modern JavaScript with no
// build step, and are embedded with go:embed, so the binary carries them.
//
// Handler serves:
//
//	GET /student          the student page (preflight, then camera + microphone)
//	GET /proctor          the proctor page (grid of student tiles, focus one)
//	GET /sdk/invigil.js   the SDK's entry, importable cross-origin (CORS *)
//	GET /sdk/*.js         the modules it imports, likewise
//	GET /sdk/invigil.d.ts its TypeScript declarations
//	GET /static/…         the pages' scripts, stylesheet and icon
//
// Every response carries Cache-Control: no-cache with an ETag, so browsers
// revalidate and pick up a new release at once; the pages carry a
// Content-Security-Policy that allows only same-origin scripts, styles and
// connections (the signaling WebSocket) and blob:/mediastream: media.
//
// The join token travels in the URL fragment (#token=…) so it never reaches
// the server, proxies or logs; the pages read it, never this package.
//
// Package web imports no project package; cmd/invigil mounts Handler next to
// the signaling endpoint.
package web
