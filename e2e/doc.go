// Package e2e holds Invigil's browser end-to-end tests. It has no non-test
// code: the tests build the invigil binary once (`go build ./cmd/invigil` in
// the module root), start `invigil serve` on 127.0.0.1 with ephemeral ports
// and a fresh data directory, mint join tokens with `invigil token`, and
// drive one real headless Chromium per test (through chromedp) with several
// tabs, and for the Firefox tests also a headless Firefox ESR (through
// node/firefox.mjs: puppeteer-core over WebDriver BiDi, JSON lines on its
// stdin and stdout), reading the pages' DOM hooks and
// RTCPeerConnection.getStats() through window.invigilClient:
//
//   - TestBrowserProctorSeesEveryStudent: three students and a proctor; the
//     proctor shows and decodes every student, students decode nothing and
//     learn of nobody, focus toggles, a leaving student's tile goes, and the
//     server exits 0 on SIGTERM.
//   - TestBrowserSimulcastFocus: two students and a proctor; grid tiles
//     decode the low simulcast layer (≤ 200 lines) and students send only
//     q; clicking a tile switches that student to the high layer (≥ 300
//     lines) within 3 s, clicking again back to low, with frames decoded
//     throughout and few freezes; a tile out of view (smaller window) stops
//     receiving video but not audio, and resumes when visible again.
//   - TestBrowserSimulcastThreeLayers: a 1280×720 camera is published as
//     q/h/f (÷4/÷2/÷1) in VP8, and only q keeps sending while nobody watches.
//   - TestFirefoxStudentSimulcast: a Firefox student, a Chromium proctor.
//     Firefox publishes rid simulcast (q, h) and sends only q while in the
//     grid (its own outbound-rtp per rid); the proctor's tile decodes the
//     low layer, a click brings the high layer within 3 s and another
//     click the low one, with new frames decoded throughout.
//   - TestFirefoxProctorSimulcast: a Chromium student, a Firefox proctor:
//     the same cycle read from Firefox's inbound-rtp (frameHeight,
//     framesDecoded) under the proctor page's data-identity tile.
//   - TestBrowserSDKGlare: the SDK's polite side of perfect negotiation
//     against an in-page impolite fake server (the real server only serves
//     the SDK).
//   - TestBrowserSDKCrossOrigin: docs/sdk.md's student page, served from
//     another origin, imports the SDK from the node, joins and goes live.
//   - TestBrowserSDKDeprecatedNames: old event names and detail keys still
//     work, each warning once.
//   - TestBrowserStudentErrors: bad links show the protocol's error codes.
//
// The scripts evaluated in the tabs live in js/ and are embedded.
//
// Every process a test starts is stopped by its PID; each test has a hard
// timeout and a goroutine leak check (goleak). On failure a test saves a PNG
// screenshot of each tab into a directory it logs (INVIGIL_E2E_ARTIFACTS, or
// a new temporary directory that is kept) and logs each tab's console, the
// server's log and the browsers' output.
//
// Chromium is expected at /usr/bin/chromium, Firefox ESR at
// /usr/bin/firefox-esr with node and e2e/node's npm packages
// (scripts/install-test-deps.sh installs them all). Without them the tests
// skip, or fail when CI=true. A Firefox test's Node process is stopped by
// its PID (it closes Firefox when its stdin ends), then any Firefox process
// left is killed by PID.
//
// Package e2e treats the binary as a black box; it imports no project
// package but internal/testclient (for a free port in the TURN test).
package e2e
