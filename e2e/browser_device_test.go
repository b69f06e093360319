package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// deviceTileJS describes Alice's tiles at the proctor: how many, the main
// video's state, and the extra videos with the frames decoded of each.
const deviceTileJS = `(async () => {
  const tiles = document.querySelectorAll('[data-identity="alice"]');
  const tile = tiles[0];
  const out = {tiles: tiles.length, state: tile?.dataset.state ?? '', extras: []};
  if (!tile) return JSON.stringify(out);
  const stats = await window.invigilClient.peerConnection.getStats();
  const frames = new Map();
  stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') frames.set(r.trackIdentifier, r.framesDecoded ?? 0); });
  for (const v of tile.querySelectorAll('.tile-extras video')) {
    const track = v.srcObject?.getVideoTracks()[0];
    out.extras.push({device: v.dataset.device, source: v.dataset.source, frames: track ? frames.get(track.id) ?? 0 : 0});
  }
  return JSON.stringify(out);
})()`

type deviceTile struct {
	Tiles  int    `json:"tiles"`
	State  string `json:"state"`
	Extras []struct {
		Device string `json:"device"`
		Source string `json:"source"`
		Frames int    `json:"frames"`
	} `json:"extras"`
}

// TestBrowserSecondDevice: Alice's page shows a QR code and link for her
// phone; a tab that opens the link joins as her second camera (video
// only). The proctor sees both cameras in Alice's one tile, the phone's
// decoding; Alice's page stays joined. When the phone's tab closes, its
// camera leaves the tile and Alice stays live.
func TestBrowserSecondDevice(t *testing.T) {
	sc := newScene(t)
	proctor := sc.open(t, "proctor", "pat", "Pat")
	alice := sc.open(t, "student", "alice", "Alice")
	tabs := []*tab{proctor, alice}

	readTile := func() deviceTile {
		t.Helper()
		var d deviceTile
		evalJSON(t, proctor, deviceTileJS, &d)
		return d
	}

	waitFor(t, tabs, "alice live at the proctor", func() (bool, string) {
		d := readTile()
		return d.State == "live", fmt.Sprintf("%+v", d)
	})
	waitFor(t, tabs, "the add-my-phone button", func() (bool, string) {
		got := mustEval[string](t, alice, `(() => { const s = document.getElementById('second-camera'); return s && !s.hidden ? 'shown' : 'hidden'; })()`)
		return got == "shown", got
	})
	mustEval[string](t, alice, `(document.getElementById('device-link').click(), 'ok')`)
	var link string
	waitFor(t, tabs, "the QR code and link", func() (bool, string) {
		got := mustEval[string](t, alice, `(() => {
  const img = document.getElementById('device-qr-img');
  if (document.getElementById('device-qr').hidden || !img.complete || img.naturalWidth < 200) return '';
  return document.getElementById('device-url').href;
})()`)
		link = got
		return strings.Contains(got, "/student#token="), got
	})

	phone := sc.br.openTab(t, "phone", link)
	tabs = append(tabs, phone)
	waitFor(t, tabs, "the phone's camera decoded in alice's tile", func() (bool, string) {
		d := readTile()
		ok := d.Tiles == 1 && d.State == "live" && len(d.Extras) == 1 && d.Extras[0].Device == "phone" && d.Extras[0].Frames > 5
		return ok, fmt.Sprintf("%+v", d)
	})
	if got := mustEval[string](t, phone, `document.title + ' | audio tracks: ' + (window.invigilClient?.localStream?.getAudioTracks().length ?? -1)`); got != "Invigil · Second camera | audio tracks: 0" {
		t.Errorf("the phone's page: %q; want the second-camera page sending video only", got)
	}
	if got := mustEval[string](t, alice, `window.invigilClient.state`); got != "joined" {
		t.Errorf("alice's page is %q after her phone joined; neither device may kick the other", got)
	}

	mustEval[string](t, phone, `(window.invigilClient.leave(), 'ok')`)
	waitFor(t, tabs, "the phone's camera gone, alice still live", func() (bool, string) {
		d := readTile()
		return d.Tiles == 1 && d.State == "live" && len(d.Extras) == 0, fmt.Sprintf("%+v", d)
	})
}
