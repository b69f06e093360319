package e2e

import (
	"context"
	_ "embed"
	"strings"
	"testing"
	"time"
)

// errorView is what the student page's error box shows.
type errorView struct {
	Visible bool   `json:"visible"`
	Code    string `json:"code"`
	Title   string `json:"title"`
	Status  string `json:"status"`
}

// errorViewJS reads the student page's error box and status.
//
//go:embed js/error_view.js
var errorViewJS string

// TestBrowserStudentErrors opens the student page with bad links and expects
// the page to name the problem with the protocol's error code; a good token
// followed by other fragment parameters must still go live.
func TestBrowserStudentErrors(t *testing.T) {
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)

	srv := startServer(t, ctx, bin, apiSecret)
	wrongSecret := strings.Repeat("w", len(apiSecret))
	tests := []struct {
		name     string
		fragment string
		code     string
	}{
		{"no token", "", "token_missing"},
		{"bad signature", "#token=" + srv.tokenWithSecret(t, ctx, wrongSecret, room, "mallory", "student", "Mallory"), "token_invalid"},
		{"not a jwt", "#token=not-a-token", "token_invalid"},
		{"extra fragment parameters", "#token=" + srv.token(t, ctx, "other-room", "olga", "student", "Olga") + "&lang=en", ""},
	}
	br := startBrowser(t, ctx, chromium)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := br.openTab(t, "errors-"+tc.name, srv.url("/student"+tc.fragment))
			deadline := time.Now().Add(10 * time.Second)
			for {
				v, err := evaluate[errorView](tb, errorViewJS)
				if err != nil {
					t.Fatal(err)
				}
				if tc.code == "" {
					// A valid token for another room joins fine: the
					// fragment's extra parameters must not break parsing.
					if v.Visible {
						t.Fatalf("valid token with extra fragment parameters shows error %+v", v)
					}
					if strings.HasPrefix(v.Status, "Live") {
						return
					}
				} else if v.Visible {
					if v.Code != tc.code || v.Title == "" {
						t.Fatalf("error box shows %+v, want code %s with a title", v, tc.code)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("after 10s the page shows %+v, want code %q", v, tc.code)
				}
				time.Sleep(pollInterval / 2)
			}
		})
	}
}
