package e2e

import (
	"strings"
	"testing"
)

// iceStateJS reads a page's ICE usernames (local and remote ufrag) and
// connection state.
const iceStateJS = `(() => {
  const pc = window.invigilClient?.peerConnection;
  const ufrag = (d) => d?.sdp.match(/a=ice-ufrag:(\S+)/)?.[1] ?? '';
  return JSON.stringify({local: ufrag(pc?.localDescription), remote: ufrag(pc?.remoteDescription),
    state: pc?.connectionState ?? '', sid: window.invigilClient?.self?.sid ?? ''});
})()`

type iceState struct {
	Local  string `json:"local"`
	Remote string `json:"remote"`
	State  string `json:"state"`
	SID    string `json:"sid"`
}

// aliceFramesJS is the frames the proctor decoded of Alice's video, and
// the sid the proctor knows her by.
const aliceFramesJS = `(async () => {
  const p = window.invigilClient.participants.get('alice');
  const video = [...(p?.mediaTracks.values() ?? [])].find((t) => t.kind === 'video');
  let frames = 0;
  if (video) {
    (await window.invigilClient.peerConnection.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.trackIdentifier === video.id) frames = r.framesDecoded ?? 0;
    });
  }
  return JSON.stringify({frames, sid: p?.sid ?? ''});
})()`

// TestBrowserICERestart: when the browser reports a network change
// ("online"), the student page's SDK restarts ICE over the same signaling
// connection: both sides get new ICE credentials, the connection comes
// back, and the proctor keeps decoding the same participant (same sid, no
// reconnect in the trail).
func TestBrowserICERestart(t *testing.T) {
	sc := newScene(t)
	proctor := sc.open(t, "proctor", "pat", "Pat")
	alice := sc.open(t, "student", "alice", "Alice")
	tabs := []*tab{proctor, alice}

	type frames struct {
		Frames int    `json:"frames"`
		SID    string `json:"sid"`
	}
	var before frames
	waitFor(t, tabs, "alice decoded at the proctor", func() (bool, string) {
		raw := evalJSON(t, proctor, aliceFramesJS, &before)
		return before.Frames > 20, raw
	})
	var first iceState
	evalJSON(t, alice, iceStateJS, &first)
	if first.State != "connected" || first.Local == "" || first.Remote == "" {
		t.Fatalf("alice's connection before the restart: %+v", first)
	}

	mustEval[bool](t, alice, `window.dispatchEvent(new Event('online'))`)
	waitFor(t, tabs, "new ICE credentials on both sides, connected", func() (bool, string) {
		var now iceState
		raw := evalJSON(t, alice, iceStateJS, &now)
		return now.Local != first.Local && now.Remote != first.Remote && now.State == "connected" && now.SID == first.SID, raw
	})
	var mid frames
	evalJSON(t, proctor, aliceFramesJS, &mid)
	waitFor(t, tabs, "the proctor still decoding alice after the restart", func() (bool, string) {
		var after frames
		raw := evalJSON(t, proctor, aliceFramesJS, &after)
		return after.Frames > mid.Frames+20 && after.SID == before.SID, raw
	})
	timeline := mustEval[string](t, proctor, `[...document.querySelectorAll('#timeline li')].map((li) => li.dataset.kind).join(' ')`)
	if strings.Contains(timeline, "reconnect") || strings.Contains(timeline, "leave") {
		t.Errorf("the restart shows in the trail as %q; it should be invisible", timeline)
	}
	if got := strings.Count(timeline, "join"); got != 2 {
		t.Errorf("timeline %q has %d joins; want 2 (proctor, alice)", timeline, got)
	}
}
