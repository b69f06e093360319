package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// get runs one request against a fresh Handler.
func get(t *testing.T, method, target string, header http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesPaths(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		contentType string
		page        bool
		contains    string
	}{
		{"student page", "/student", "text/html; charset=utf-8", true, `src="static/student.js"`},
		{"proctor page", "/proctor", "text/html; charset=utf-8", true, `id="tile-template"`},
		{"sdk", "/sdk/invigil.js", "text/javascript", false, "export {InvigilClient} from './client.js';"},
		{"sdk module", "/sdk/client.js", "text/javascript", false, "export class InvigilClient"},
		{"sdk types", "/sdk/invigil.d.ts", "application/typescript; charset=utf-8", false, "export declare class InvigilClient"},
		{"student script", "/static/student.js", "text/javascript", false, "window.invigilClient"},
		{"proctor script", "/static/proctor.js", "text/javascript", false, "window.invigilClient"},
		{"messages", "/static/messages.js", "text/javascript", false, "export function describeError"},
		{"stylesheet", "/static/invigil.css", "text/css; charset=utf-8", false, ".tile"},
		{"icon", "/static/favicon.svg", "image/svg+xml", false, "<svg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := get(t, http.MethodGet, tc.path, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: status %d, want 200", tc.path, res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q, want no-cache", got)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			csp := res.Header.Get("Content-Security-Policy")
			if tc.page {
				for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "media-src 'self' blob: mediastream:"} {
					if !strings.Contains(csp, want) {
						t.Errorf("CSP %q lacks %q", csp, want)
					}
				}
			} else if csp != "" {
				t.Errorf("non-page %s has a CSP", tc.path)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body of %s lacks %q", tc.path, tc.contains)
			}
		})
	}
}

func TestHandlerRejects(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		status int
	}{
		{"root", http.MethodGet, "/", http.StatusNotFound},
		{"trailing slash", http.MethodGet, "/student/", http.StatusNotFound},
		{"html name", http.MethodGet, "/student.html", http.StatusNotFound},
		{"unknown static", http.MethodGet, "/static/nope.js", http.StatusNotFound},
		{"static dir", http.MethodGet, "/static/", http.StatusNotFound},
		{"other sdk", http.MethodGet, "/sdk/other.js", http.StatusNotFound},
		{"sdk dir", http.MethodGet, "/sdk/", http.StatusNotFound},
		{"assets prefix", http.MethodGet, "/assets/student.html", http.StatusNotFound},
		{"traversal", http.MethodGet, "/static/../web.go", http.StatusNotFound},
		{"post page", http.MethodPost, "/student", http.StatusMethodNotAllowed},
		{"delete sdk", http.MethodDelete, "/sdk/invigil.js", http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := get(t, tc.method, tc.path, nil)
			if res.StatusCode != tc.status {
				t.Fatalf("%s %s: status %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
			}
			if tc.status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", res.Header.Get("Allow"))
			}
		})
	}
}

// TestHandlerSDKCrossOrigin checks that every file of the SDK may be
// imported by a page of another origin: a module script and each module it
// imports are fetched in CORS mode, so one file without the header breaks
// the import.
func TestHandlerSDKCrossOrigin(t *testing.T) {
	h := Handler().(*handler)
	n := 0
	for p := range h.files {
		if !strings.HasPrefix(p, "/sdk/") {
			continue
		}
		n++
		res := get(t, http.MethodGet, p, http.Header{"Origin": {"https://exam.example.com"}})
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin = %q, want *", p, got)
		}
		if got := res.Header.Get("Cross-Origin-Resource-Policy"); got != "cross-origin" {
			t.Errorf("%s: Cross-Origin-Resource-Policy = %q, want cross-origin", p, got)
		}
	}
	if n < 3 {
		t.Fatalf("%d files under /sdk/, want the entry, its modules and invigil.d.ts", n)
	}
	for _, p := range []string{"/student", "/static/student.js"} {
		if got := get(t, http.MethodGet, p, nil).Header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s: Access-Control-Allow-Origin = %q, want none (only the SDK is for other origins)", p, got)
		}
	}
	res := get(t, http.MethodGet, "/sdk/invigil.js", nil)
	if got := res.Header.Get("X-TypeScript-Types"); got != "./invigil.d.ts" {
		t.Errorf("/sdk/invigil.js: X-TypeScript-Types = %q, want ./invigil.d.ts", got)
	}
}

func TestHandlerHeadAndRevalidation(t *testing.T) {
	res := get(t, http.MethodHead, "/sdk/invigil.js", nil)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: status %d", res.StatusCode)
	}
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("SDK Access-Control-Allow-Origin = %q, want * (platforms import it cross-origin)", got)
	}
	etag := res.Header.Get("ETag")
	res = get(t, http.MethodGet, "/sdk/invigil.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match %s: status %d, want 304", etag, res.StatusCode)
	}
}

// refPattern finds the same-origin references the pages and scripts make:
// src/href attributes and static ES module imports.
var refPattern = regexp.MustCompile(`(?:src|href)="([^"]+)"|from '([^']+)'`)

// TestReferencesResolve checks that every file a page or script loads is
// served, so a renamed asset cannot break the pages silently.
func TestReferencesResolve(t *testing.T) {
	h := Handler().(*handler)
	for from, f := range h.files {
		if !strings.HasSuffix(from, ".html") && !strings.HasSuffix(from, ".js") && !f.page {
			continue
		}
		base, _ := url.Parse("http://invigil.test" + from)
		for _, m := range refPattern.FindAllStringSubmatch(string(f.body), -1) {
			ref := m[1] + m[2]
			if strings.HasPrefix(ref, "data:") || strings.Contains(ref, "://") {
				continue
			}
			target := base.ResolveReference(&url.URL{Path: ref}).Path
			if _, ok := h.files[target]; !ok {
				t.Errorf("%s references %q (%s), which is not served", from, ref, target)
			}
		}
	}
}
