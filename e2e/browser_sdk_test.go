package e2e

import (
	_ "embed"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// consoleWarningsJS is an init script keeping console.warn lines in
// window.__warnings.
//
//go:embed js/console_warnings.js
var consoleWarningsJS string

// deprecatedEventsJS subscribes a joined proctor tab to deprecated event names.
//
//go:embed js/deprecated_events.js
var deprecatedEventsJS string

// deprecationWarnings returns the tab's console warnings about deprecated names.
func deprecationWarnings(t *testing.T, tb *tab) []string {
	t.Helper()
	var w []string
	evalJSON(t, tb, `JSON.stringify((window.__warnings ?? []).filter((w) => w.includes('deprecated')))`, &w)
	return w
}

// deprecatedEvents is what js/deprecated_events.js records.
type deprecatedEvents struct {
	Current      []string `json:"current"`
	Old          []string `json:"old"`
	OldAgain     []string `json:"oldAgain"`
	SameDetail   []bool   `json:"sameDetail"`
	Tracks       []string `json:"tracks"`
	TrackIDAlias []bool   `json:"trackIDAlias"`
	PCAlias      bool     `json:"pcAlias"`
}

// TestBrowserSDKDeprecatedNames subscribes Invigil's proctor page's client
// to the old event names (participant_joined twice, track_published) and
// reads the old detail key track_id and client.pc: each still works, with
// the same detail as the new name, and each old name warns exactly once.
// Invigil's own pages use no deprecated name.
func TestBrowserSDKDeprecatedNames(t *testing.T) {
	s := newScene(t)
	proctor := s.br.openTabWithInit(t, "proctor", s.srv.url("/proctor#token="+s.srv.token(t, s.ctx, room, "pat", "proctor", "Pat")), consoleWarningsJS)
	waitFor(t, []*tab{proctor}, "the proctor joins", func() (bool, string) {
		ok, err := evaluate[bool](proctor, deprecatedEventsJS)
		return err == nil && ok, fmt.Sprint(err)
	})
	student := s.br.openTabWithInit(t, "alice", s.srv.url("/student#token="+s.srv.token(t, s.ctx, room, "alice", "student", "Alice")), consoleWarningsJS)
	tabs := []*tab{proctor, student}

	var got deprecatedEvents
	waitFor(t, tabs, "the old names get alice and her camera", func() (bool, string) {
		raw := evalJSON(t, proctor, `JSON.stringify(window.__deprecated)`, &got)
		return slices.Contains(got.Old, "alice") && slices.Contains(got.Tracks, "camera"), raw
	})
	if !slices.Equal(got.Current, []string{"alice"}) || !slices.Equal(got.Old, []string{"alice"}) || !slices.Equal(got.OldAgain, []string{"alice"}) {
		t.Errorf("participantjoined got %v, participant_joined %v and %v; want alice once each", got.Current, got.Old, got.OldAgain)
	}
	if slices.Contains(got.SameDetail, false) {
		t.Errorf("participant_joined's detail differs from participantjoined's: %v", got.SameDetail)
	}
	if len(got.TrackIDAlias) == 0 || slices.Contains(got.TrackIDAlias, false) {
		t.Errorf("track.track_id is not a hidden alias of track.trackId: %v", got.TrackIDAlias)
	}
	if !got.PCAlias {
		t.Error("client.pc is not client.peerConnection")
	}

	warnings := deprecationWarnings(t, proctor)
	for _, old := range []string{"'participant_joined'", "'track_published'", "track_id", "client.pc"} {
		n := 0
		for _, w := range warnings {
			if strings.Contains(w, old) {
				n++
				if !strings.Contains(w, "0.2.0") {
					t.Errorf("warning %q does not say when the name goes", w)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d warnings name %s, want 1; warnings: %q", n, old, warnings)
		}
	}
	if len(warnings) != 4 {
		t.Errorf("proctor warned %q; want one warning for each of the 4 old names used, none of its own", warnings)
	}
	if w := deprecationWarnings(t, student); len(w) != 0 {
		t.Errorf("the student page uses deprecated names: %q", w)
	}
}

// docsStudentPage returns the HTML page and the module script of
// docs/sdk.md's "Your own student page", with the example node's address
// (https://invigil.example.com) replaced by nodeHost's, over plain HTTP.
func docsStudentPage(t *testing.T, nodeHost string) (html, js string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "sdk.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## Your own student page\n")
	if !ok {
		t.Fatal(`docs/sdk.md has no "## Your own student page"`)
	}
	block := func(lang string) string {
		_, rest, ok := strings.Cut(section, "\n```"+lang+"\n")
		code, _, closed := strings.Cut(rest, "\n```\n")
		if !ok || !closed {
			t.Fatalf("docs/sdk.md's student page has no %s block", lang)
		}
		return strings.NewReplacer("https://invigil.example.com", "http://"+nodeHost, "wss://invigil.example.com", "ws://"+nodeHost).Replace(code)
	}
	html, js = block("html"), block("js")
	if !strings.Contains(js, "http://"+nodeHost+"/sdk/invigil.js") || !strings.Contains(html, `src="/exam.js"`) {
		t.Fatalf("docs/sdk.md's student page does not import the SDK from the node or load /exam.js:\n%s\n%s", html, js)
	}
	return html, js
}

// platformHandler serves an exam platform's student page, /exam, and its
// module script, /exam.js.
func platformHandler(html, js string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /exam", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	})
	mux.HandleFunc("GET /exam.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, js)
	})
	return mux
}

// platformView is what the test reads from the platform's page.
type platformView struct {
	Origin  string   `json:"origin"`
	State   string   `json:"state"`
	Status  string   `json:"status"`
	Modules []string `json:"modules"`
}

// platformViewJS reads the platform page's status and the SDK modules it loaded.
const platformViewJS = `({
  origin: location.origin,
  state: document.getElementById('status')?.dataset.state ?? '',
  status: document.getElementById('status')?.textContent ?? '',
  modules: performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/sdk/')),
})`

// TestBrowserSDKCrossOrigin embeds the SDK as an exam platform does: the
// student page of docs/sdk.md ("Your own student page"), served verbatim
// from the platform's own origin (another port of 127.0.0.1, with its own
// CSP), imports /sdk/invigil.js from the node, joins through the signaling
// URL derived from where the module came from (the node allows the
// platform's origin with --allowed-origins) and goes live; Invigil's
// proctor page shows and decodes the student. The page uses no deprecated
// name.
func TestBrowserSDKCrossOrigin(t *testing.T) {
	// The platform's listener (127.0.0.1:0) exists before the node starts,
	// so the node can allow its origin; its handler needs the node's
	// address. It serves nothing until Start, so it starts no goroutine
	// before the scene's leak check is in place.
	platform := httptest.NewUnstartedServer(nil)
	s := newScene(t, "--allowed-origins", platform.Listener.Addr().String())
	t.Cleanup(platform.Close)
	srv := s.srv
	nodeOrigin := "http://" + srv.addr
	platform.Config.Handler = platformHandler(docsStudentPage(t, srv.addr))
	platform.Start()

	proctor := s.br.openTab(t, "proctor", srv.url("/proctor#token="+srv.token(t, s.ctx, room, "pat", "proctor", "Pat")))
	exam := s.br.openTabWithInit(t, "platform-alice", platform.URL+"/exam#token="+srv.token(t, s.ctx, room, "alice", "student", "Alice"), consoleWarningsJS)
	tabs := []*tab{proctor, exam}

	var view platformView
	waitFor(t, tabs, "the platform's page goes live", func() (bool, string) {
		v, err := evaluate[platformView](exam, platformViewJS)
		if err != nil {
			return false, err.Error()
		}
		view = v
		return v.State == "live" || v.State == "error" || v.State == "ended", fmt.Sprintf("%+v", v)
	})
	if view.State != "live" {
		t.Fatalf("the platform's page says %q (%s), want live", view.Status, view.State)
	}
	if view.Origin != platform.URL || view.Origin == nodeOrigin {
		t.Errorf("the platform page's origin is %s, want %s (not the node's %s)", view.Origin, platform.URL, nodeOrigin)
	}
	if !slices.Contains(view.Modules, nodeOrigin+"/sdk/invigil.js") || !slices.Contains(view.Modules, nodeOrigin+"/sdk/client.js") {
		t.Errorf("the page loaded SDK files %v, want the node's invigil.js and the modules it imports", view.Modules)
	}

	if w := deprecationWarnings(t, exam); len(w) != 0 {
		t.Errorf("the documented page uses deprecated names: %q", w)
	}

	waitFor(t, tabs, "the proctor decodes the platform's student", func() (bool, string) {
		ps, err := evaluate[pageState](proctor, pageStateJS)
		if err != nil {
			return false, err.Error()
		}
		for _, tile := range ps.Tiles {
			if tile.Identity != "alice" || tile.State != "live" || len(tile.TrackIDs) == 0 {
				continue
			}
			for _, in := range ps.Inbound {
				if in.TrackIdentifier == tile.TrackIDs[0] && in.FramesDecoded > 0 {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%+v", ps)
	})
}
