package e2e

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// hardTimeout bounds the whole scenario after the binary is built:
	// server, tokens, browser, tabs, assertions and shutdown.
	hardTimeout = 90 * time.Second
	// mediaTimeout is how long, after the tabs are open, the proctor may take
	// to show and decode every student.
	mediaTimeout = 20 * time.Second
	// pollInterval is how often the tabs are inspected while waiting.
	pollInterval = 500 * time.Millisecond
	// apiSecret is the HS256 key of this test's server (40 characters).
	apiSecret = "invigil-e2e-secret-0123456789abcdefghijk"
	// room is the exam room of this test.
	room = "exam-e2e"
)

// pageStateJS returns a tab's client state, proctor tiles and video RTP stats.
//
//go:embed js/page_state.js
var pageStateJS string

// focusTileJS clicks one proctor tile; IDENTITY is replaced by a JSON string.
//
//go:embed js/focus_tile.js
var focusTileJS string

// focusResult is what js/focus_tile.js returns.
type focusResult struct {
	Clicked bool     `json:"clicked"`
	Focused []string `json:"focused"`
	Pressed string   `json:"pressed"`
	Width   float64  `json:"width"`
}

// pageState is what js/page_state.js returns.
type pageState struct {
	ClientState     string      `json:"clientState"`
	ConnectionState string      `json:"connectionState"`
	Participants    []string    `json:"participants"`
	Status          string      `json:"status"`
	Error           string      `json:"error"`
	Tiles           []tileState `json:"tiles"`
	Inbound         []rtpStats  `json:"inbound"`
	Outbound        []rtpStats  `json:"outbound"`
}

// tileState is one proctor tile.
type tileState struct {
	Identity   string   `json:"identity"`
	State      string   `json:"state"`
	HasVideo   bool     `json:"hasVideo"`
	TrackIDs   []string `json:"trackIds"`
	VideoWidth int      `json:"videoWidth"`
}

// rtpStats is one inbound-rtp or outbound-rtp video stats entry.
type rtpStats struct {
	TrackIdentifier string `json:"trackIdentifier"`
	Mid             string `json:"mid"`
	FramesDecoded   int    `json:"framesDecoded"`
	PacketsReceived int    `json:"packetsReceived"`
	FramesEncoded   int    `json:"framesEncoded"`
	FrameWidth      int    `json:"frameWidth"`
	FrameHeight     int    `json:"frameHeight"`
}

// student is one synthetic student of the scenario.
type student struct {
	identity, name string
	tab            *tab
}

// TestBrowserProctorSeesEveryStudent runs three student tabs and one proctor
// tab in one headless Chromium against a real `invigil serve`: the proctor
// must show a tile per student and decode each student's video; no student
// may decode anything or learn about the others; clicking a tile focuses it
// and clicking again returns to the grid; a student who leaves loses its
// tile; the server must then exit 0 on SIGTERM.
func TestBrowserProctorSeesEveryStudent(t *testing.T) {
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)

	// Cancelled by a cleanup (the last to run), not a defer: on failure the
	// browser must outlive the test body so its cleanup can take screenshots.
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)

	srv := startServer(t, ctx, bin, apiSecret)
	students := []*student{
		{identity: "alice", name: "Alice Anders"},
		{identity: "bob", name: "Bob Brown"},
		{identity: "carol", name: "Carol Chen"},
	}
	tokens := make(map[string]string)
	for _, s := range students {
		tokens[s.identity] = srv.token(t, ctx, room, s.identity, "student", s.name)
	}
	proctorToken := srv.token(t, ctx, room, "pat", "proctor", "Pat Proctor")

	// The proctor joins between the students, so both paths are covered: a
	// student already in the room (listed in `joined`) and students joining
	// later (participant_joined, then a server offer to renegotiate).
	br := startBrowser(t, ctx, chromium)
	students[0].tab = br.openTab(t, "student-"+students[0].identity, srv.url("/student#token="+tokens[students[0].identity]))
	proctor := br.openTab(t, "proctor", srv.url("/proctor#token="+proctorToken))
	for _, s := range students[1:] {
		s.tab = br.openTab(t, "student-"+s.identity, srv.url("/student#token="+tokens[s.identity]))
	}

	want := make([]string, 0, len(students))
	for _, s := range students {
		want = append(want, s.identity)
	}
	slices.Sort(want)

	deadline := time.Now().Add(mediaTimeout)
	for {
		problems, decoded := inspect(t, proctor, students, want)
		if len(problems) == 0 {
			t.Logf("proctor decodes %d students: %v", len(decoded), decoded)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the room is not as expected:\n  %s", mediaTimeout, strings.Join(problems, "\n  "))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("hard timeout (%v): %v; last problems:\n  %s", hardTimeout, ctx.Err(), strings.Join(problems, "\n  "))
		case <-time.After(pollInterval):
		}
	}

	checkFocus(t, proctor, "bob")
	checkLeave(t, ctx, proctor, students[len(students)-1], want)

	code, err := srv.stop()
	if err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	if code != 0 {
		t.Fatalf("invigil serve exited with code %d after SIGTERM, want 0", code)
	}
}

// inspect reads every tab once and returns what is still wrong, plus the
// proctor's identity → decoded video track. A privacy breach (a student
// decoding video or learning of another participant) fails the test at once.
func inspect(t *testing.T, proctor *tab, students []*student, want []string) ([]string, map[string]string) {
	t.Helper()
	var problems []string
	for _, s := range students {
		st, err := evaluate[pageState](s.tab, pageStateJS)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, in := range st.Inbound {
			if in.FramesDecoded > 0 {
				t.Fatalf("privacy: student %s decodes video track %q (%d frames); students must receive no student media", s.identity, in.TrackIdentifier, in.FramesDecoded)
			}
		}
		if len(st.Participants) > 0 || len(st.Tiles) > 0 {
			t.Fatalf("privacy: student %s knows participants %v / shows tiles %v", s.identity, st.Participants, st.Tiles)
		}
		encoded := 0
		for _, out := range st.Outbound {
			encoded += out.FramesEncoded
		}
		if encoded == 0 {
			problems = append(problems, fmt.Sprintf("student %s: no video frames encoded yet (client %s, pc %q, status %q, error %q)",
				s.identity, st.ClientState, st.ConnectionState, st.Status, st.Error))
		}
	}

	st, err := evaluate[pageState](proctor, pageStateJS)
	if err != nil {
		return append(problems, err.Error()), nil
	}
	var identities []string
	trackOwner := make(map[string]string) // video track id → tile identity
	for _, tile := range st.Tiles {
		identities = append(identities, tile.Identity)
		if !tile.HasVideo {
			problems = append(problems, fmt.Sprintf("proctor: tile %s has no <video>", tile.Identity))
		}
		for _, id := range tile.TrackIDs {
			trackOwner[id] = tile.Identity
		}
	}
	slices.Sort(identities)
	if !slices.Equal(identities, want) {
		problems = append(problems, fmt.Sprintf("proctor: tiles %v, want %v (client %s, pc %q, participants %v, status %q, error %q)",
			identities, want, st.ClientState, st.ConnectionState, st.Participants, st.Status, st.Error))
	}
	decoded := make(map[string]string) // identity → track id
	for _, in := range st.Inbound {
		if in.FramesDecoded == 0 {
			continue
		}
		owner, ok := trackOwner[in.TrackIdentifier]
		if !ok {
			problems = append(problems, fmt.Sprintf("proctor: decodes track %q (mid %s) that no tile shows", in.TrackIdentifier, in.Mid))
			continue
		}
		if prev, dup := decoded[owner]; dup && prev != in.TrackIdentifier {
			problems = append(problems, fmt.Sprintf("proctor: tile %s shows two decoded tracks %q and %q", owner, prev, in.TrackIdentifier))
		}
		decoded[owner] = in.TrackIdentifier
	}
	for _, id := range want {
		if _, ok := decoded[id]; !ok {
			problems = append(problems, fmt.Sprintf("proctor: no decoded video for %s (inbound %+v, tiles %+v)", id, st.Inbound, st.Tiles))
		}
	}
	return problems, decoded
}

// checkFocus clicks identity's tile twice: the first click must focus it
// alone (and enlarge it), the second must return to the grid.
func checkFocus(t *testing.T, proctor *tab, identity string) {
	t.Helper()
	script := strings.ReplaceAll(focusTileJS, "IDENTITY", strconv.Quote(identity))
	first, err := evaluate[focusResult](proctor, script)
	if err != nil {
		t.Fatalf("focusing %s: %v", identity, err)
	}
	if !first.Clicked || !slices.Equal(first.Focused, []string{identity}) || first.Pressed != "true" {
		t.Fatalf("after one click on %s: %+v, want only %s focused", identity, first, identity)
	}
	second, err := evaluate[focusResult](proctor, script)
	if err != nil {
		t.Fatalf("unfocusing %s: %v", identity, err)
	}
	if len(second.Focused) != 0 || second.Pressed != "false" {
		t.Fatalf("after a second click on %s: %+v, want the grid back", identity, second)
	}
	if first.Width <= second.Width {
		t.Errorf("focused tile is %.0fpx wide, grid tile %.0fpx: focus should enlarge it", first.Width, second.Width)
	}
}

// checkLeave makes s leave the room through the SDK and waits for the
// proctor's tile of s to disappear while the others stay.
func checkLeave(t *testing.T, ctx context.Context, proctor *tab, s *student, all []string) {
	t.Helper()
	if _, err := evaluate[bool](s.tab, `window.invigilClient.leave().then(() => true)`); err != nil {
		t.Fatalf("student %s leaving: %v", s.identity, err)
	}
	left, err := evaluate[pageState](s.tab, pageStateJS)
	if err != nil {
		t.Fatalf("reading student %s after leaving: %v", s.identity, err)
	}
	if left.ClientState != "closed" || left.Error != "" {
		t.Errorf("student %s after leave(): client %s, error %q; want closed without an error", s.identity, left.ClientState, left.Error)
	}
	rest := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == s.identity })
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := evaluate[pageState](proctor, pageStateJS)
		if err != nil {
			t.Fatalf("reading the proctor after %s left: %v", s.identity, err)
		}
		var identities []string
		for _, tile := range st.Tiles {
			identities = append(identities, tile.Identity)
		}
		slices.Sort(identities)
		if slices.Equal(identities, rest) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s left, proctor tiles are %v, want %v", s.identity, identities, rest)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("hard timeout waiting for %s's tile to go: %v", s.identity, ctx.Err())
		case <-time.After(pollInterval / 2):
		}
	}
}
