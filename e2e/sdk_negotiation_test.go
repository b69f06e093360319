package e2e

import (
	"context"
	_ "embed"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// glareHarnessJS runs the SDK against an in-page impolite fake server; MODE
// is replaced by a JSON string.
//
//go:embed js/glare_harness.js
var glareHarnessJS string

// glareResult is what js/glare_harness.js returns.
type glareResult struct {
	Mode             string   `json:"mode"`
	OK               bool     `json:"ok"`
	Exception        string   `json:"exception"`
	ServerFrames     int      `json:"serverFrames"`
	ClientFrames     int      `json:"clientFrames"`
	OfferTracksValid bool     `json:"offerTracksValid"`
	LastOfferSources []string `json:"lastOfferSources"`
	ClientOffers     []string `json:"clientOffers"`
	ClientErrors     []string `json:"clientErrors"`
	Warnings         []string `json:"warnings"`
	ClientTracks     []struct {
		Kind     string `json:"kind"`
		Identity string `json:"identity"`
	} `json:"clientTracks"`
	ClientSignaling string   `json:"clientSignaling"`
	ServerSignaling string   `json:"serverSignaling"`
	Trace           []string `json:"trace"`
}

// TestBrowserSDKGlare checks the SDK's polite side of perfect negotiation in
// real Chromium against an in-page fake server (the real server serves the
// SDK): it holds a candidate that arrives before any remote description;
// when the server's offer crosses the client's, the client rolls back,
// answers and offers again; when the server rejects an offer with `glare`
// alone, the client rolls back itself and re-offers.
// `glare` never surfaces as an error event.
func TestBrowserSDKGlare(t *testing.T) {
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)

	srv := startServer(t, ctx, bin, apiSecret)
	br := startBrowser(t, ctx, chromium)

	for _, mode := range []string{"crossed", "glare-first"} {
		t.Run(mode, func(t *testing.T) {
			// The proctor page without a token does nothing but show an
			// error; it gives the harness a same-origin document.
			tb := br.openTab(t, "sdk-"+mode, srv.url("/proctor"))
			script := strings.ReplaceAll(glareHarnessJS, "MODE", strconv.Quote(mode))
			res, err := evaluateFor[glareResult](tb, script, 2*mediaTimeout)
			if err != nil {
				t.Fatalf("harness: %v", err)
			}
			t.Logf("trace: %s", strings.Join(res.Trace, " | "))
			if res.Exception != "" || !res.OK {
				t.Fatalf("negotiation did not settle: %+v", res)
			}
			wantOffers := map[string]int{"crossed": 3, "glare-first": 2}[mode]
			if len(res.ClientOffers) != wantOffers {
				t.Errorf("client sent offers %v, want %d (one rejected, then the retry)", res.ClientOffers, wantOffers)
			}
			if len(res.ClientErrors) != 0 {
				t.Errorf("client dispatched error events %v; glare must be handled inside the SDK", res.ClientErrors)
			}
			if len(res.Warnings) != 0 {
				t.Errorf("SDK warned %q (e.g. a candidate applied before a remote description)", res.Warnings)
			}
			if !res.OfferTracksValid || !slices.Equal(res.LastOfferSources, []string{"camera", "microphone"}) {
				t.Errorf("last offer's tracks %v (valid %v), want camera and microphone on their m-lines", res.LastOfferSources, res.OfferTracksValid)
			}
			if mode == "crossed" {
				found := false
				for _, tr := range res.ClientTracks {
					found = found || (tr.Kind == "video" && tr.Identity == "proctor")
				}
				if !found {
					t.Errorf("client tracks %+v, want the server's video resolved to identity proctor", res.ClientTracks)
				}
			}
		})
	}
}
