package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// screenTileJS describes Alice's tile at the proctor: the sources of its
// extra videos, its badges, and the decoding stats of the screen track.
const screenTileJS = `(async () => {
  const tile = document.querySelector('[data-identity="alice"]');
  const out = {extras: [], badges: tile?.dataset.badges ?? '', screenFrames: 0, screenHeight: 0, timeline: ''};
  out.timeline = [...document.querySelectorAll('#timeline li')].map((li) => li.dataset.kind).join(' ');
  if (!tile) return JSON.stringify(out);
  const screen = tile.querySelector('.tile-extras video[data-source="screen"]');
  out.extras = [...tile.querySelectorAll('.tile-extras video')].map((v) => v.dataset.source);
  const track = screen?.srcObject?.getVideoTracks()[0];
  if (track) {
    const stats = await window.invigilClient.peerConnection.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.trackIdentifier === track.id) {
        out.screenFrames = r.framesDecoded ?? 0;
        out.screenHeight = r.frameHeight ?? 0;
      }
    });
  }
  return JSON.stringify(out);
})()`

type screenTile struct {
	Extras       []string `json:"extras"`
	Badges       string   `json:"badges"`
	ScreenFrames int      `json:"screenFrames"`
	ScreenHeight int      `json:"screenHeight"`
	Timeline     string   `json:"timeline"`
}

// TestBrowserScreenShare: a student whose token requires camera and
// screen is admitted only once the screen is shared from the page's
// button; the proctor sees the screen as a second, full-resolution video
// in the student's tile (no simulcast: the fake 800×600 screen arrives at
// its own height, not scaled to a grid layer). When the student stops
// sharing, the proctor's tile is marked missing:screen at once and the
// student's page offers to share again.
func TestBrowserScreenShare(t *testing.T) {
	sc := newScene(t)
	proctor := sc.open(t, "proctor", "pat", "Pat")
	alice := sc.br.openTab(t, "alice", sc.srv.url("/student#token="+sc.srv.mint(t, sc.ctx,
		"--room", room, "--identity", "alice", "--role", "student", "--name", "Alice", "--require", "camera,screen")))
	tabs := []*tab{proctor, alice}

	readTile := func() screenTile {
		t.Helper()
		var s screenTile
		evalJSON(t, proctor, screenTileJS, &s)
		return s
	}

	waitFor(t, tabs, "the share-screen button on alice's page", func() (bool, string) {
		got := mustEval[string](t, alice, `(() => { const b = document.getElementById('share-screen'); return b && !b.hidden ? 'shown' : 'hidden'; })()`)
		return got == "shown", got
	})
	waitFor(t, tabs, "alice's camera live at the proctor", func() (bool, string) {
		got := mustEval[string](t, proctor, `document.querySelector('[data-identity="alice"]')?.dataset.state ?? ''`)
		return got == "live", got
	})
	if s := readTile(); strings.Contains(s.Timeline, "admitted") {
		t.Fatalf("alice admitted before sharing her screen (timeline %q)", s.Timeline)
	}

	mustEval[string](t, alice, `(document.getElementById('share-screen').click(), 'ok')`)
	waitFor(t, tabs, "alice's screen decoded at the proctor", func() (bool, string) {
		s := readTile()
		return s.ScreenFrames > 5 && strings.Contains(s.Timeline, "admitted"), fmt.Sprintf("%+v", s)
	})
	if s := readTile(); s.ScreenHeight < 500 {
		t.Errorf("the screen arrives %d px high; want the whole 600 (one layer, no grid scaling)", s.ScreenHeight)
	}

	// Stop sharing as the browser's own "Stop sharing" bar does: the
	// track's source ends and the page hears "ended".
	mustEval[string](t, alice, `(() => {
  const track = window.invigilClient.screenStream.getVideoTracks()[0];
  track.stop();
  track.dispatchEvent(new Event('ended'));
  return 'ok';
})()`)
	waitFor(t, tabs, "missing:screen on alice's tile", func() (bool, string) {
		s := readTile()
		return strings.Contains(s.Badges, "missing:screen") && len(s.Extras) == 0, fmt.Sprintf("%+v", s)
	})
	waitFor(t, tabs, "the share-again button", func() (bool, string) {
		got := mustEval[string](t, alice, `(() => { const b = document.getElementById('share-screen'); return b && !b.hidden ? b.textContent : ''; })()`)
		return strings.Contains(got, "again"), got
	})
}
