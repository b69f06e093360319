package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/invigil/invigil/metrics"
)

// errorBody decodes an answer that must be the one error shape.
func errorBody(t *testing.T, what string, resp *http.Response, body []byte) string {
	t.Helper()
	var e map[string]any
	if err := json.Unmarshal(body, &e); err != nil || len(e) != 2 || e["message"] == "" {
		t.Fatalf("%s: HTTP %d %q, not {code, message}", what, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	code, _ := e["code"].(string)
	return code
}

// TestErrorShapeBeyondRoutes: the error answers written outside the
// route table's handlers are in the one shape too: a signaling
// connection refused for its address's rate (429 rate_limited, with
// Retry-After, as docs/openapi.yaml says), and the admin listener's
// /drain asked with another method (405 method_not_allowed).
func TestErrorShapeBeyondRoutes(t *testing.T) {
	srv := startServe(t, "--api-secret", secret, "--connection-rate-per-ip", "0.01", "--connection-burst-per-ip", "1")
	raw, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	_, v := loadSpec(t, raw)
	get := func() (*http.Request, *http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.base+"/v1/rtc", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return req, resp, b
	}
	// The first takes the burst's one connection (and is no WebSocket
	// upgrade: the library's plain 426); the second is over the rate.
	if _, resp, b := get(); resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("a plain GET of /v1/rtc: HTTP %d %q, want 426", resp.StatusCode, b)
	}
	req, resp, b := get()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: HTTP %d (Retry-After %q) %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if code := errorBody(t, "429", resp, b); code != "rate_limited" {
		t.Errorf("429 code %q, want rate_limited", code)
	}
	if ok, errs := validateResponse(v, req, resp, b); !ok {
		t.Errorf("the 429 does not match docs/openapi.yaml:%s", validationText(errs))
	}

	h := adminDrainHandler(func(time.Duration) { t.Error("DELETE /drain started a drain") }, func() metrics.Capacity { return metrics.Capacity{} })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/drain", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, POST" {
		t.Errorf("DELETE /drain: HTTP %d, Allow %q; want 405 with Allow: GET, POST", rec.Code, rec.Header().Get("Allow"))
	}
	if code := errorBody(t, "DELETE /drain", rec.Result(), rec.Body.Bytes()); code != "method_not_allowed" {
		t.Errorf("DELETE /drain: code %q, want method_not_allowed", code)
	}
}
