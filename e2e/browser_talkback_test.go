package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// talkbackStateJS reports what a student page receives: every inbound RTP
// stream of its PeerConnection (a student's page receives nothing but a
// proctor's talk-back), and whether the talk-back banner and player show.
const talkbackStateJS = `(async () => {
  const c = window.invigilClient;
  const out = {inbound: [], banner: false, from: '', playing: false};
  const banner = document.getElementById('talkback');
  out.banner = !!banner && !banner.hidden;
  out.from = document.getElementById('talkback-from')?.textContent ?? '';
  const audio = document.getElementById('talkback-audio');
  out.playing = !!audio?.srcObject && audio.srcObject.getAudioTracks().some((t) => t.readyState === 'live');
  if (c?.peerConnection) {
    const stats = await c.peerConnection.getStats();
    stats.forEach((r) => {
      if (r.type === 'inbound-rtp') out.inbound.push({kind: r.kind, packets: r.packetsReceived ?? 0, samples: r.totalSamplesReceived ?? 0});
    });
  }
  return JSON.stringify(out);
})()`

type talkbackState struct {
	Inbound []struct {
		Kind    string `json:"kind"`
		Packets int    `json:"packets"`
		Samples int    `json:"samples"`
	} `json:"inbound"`
	Banner  bool   `json:"banner"`
	From    string `json:"from"`
	Playing bool   `json:"playing"`
}

func (s talkbackState) audioPackets() (n int) {
	for _, r := range s.Inbound {
		if r.Kind == "audio" {
			n += r.Packets
		}
	}
	return n
}

func (s talkbackState) packets() (n int) {
	for _, r := range s.Inbound {
		n += r.Packets
	}
	return n
}

// TestBrowserTalkback: the proctor page's Talk button on Alice's tile
// sends the proctor's (fake) microphone to Alice's page, which shows who
// speaks and plays it; Bob's page, in the same room, receives not one
// packet. Stopping hides Alice's banner, and both ends are in the
// proctor's timeline.
func TestBrowserTalkback(t *testing.T) {
	sc := newScene(t)
	proctor := sc.open(t, "proctor", "pat", "Pat")
	alice := sc.open(t, "student", "alice", "Alice")
	bob := sc.open(t, "student", "bob", "Bob")
	tabs := []*tab{proctor, alice, bob}

	read := func(tb *tab) talkbackState {
		t.Helper()
		var s talkbackState
		evalJSON(t, tb, talkbackStateJS, &s)
		return s
	}
	waitFor(t, tabs, "both students live at the proctor", func() (bool, string) {
		got := mustEval[string](t, proctor, `[...document.querySelectorAll('[data-identity]')].map((el) => el.dataset.identity + ':' + el.dataset.state).join(' ')`)
		return strings.Contains(got, "alice:live") && strings.Contains(got, "bob:live"), got
	})

	click := `document.querySelector('[data-identity="alice"] [data-action="talk"]').click(), 'ok'`
	mustEval[string](t, proctor, click)
	waitFor(t, tabs, "alice hearing the proctor", func() (bool, string) {
		s := read(alice)
		return s.audioPackets() > 50 && s.Banner && s.Playing, fmt.Sprintf("%+v", s)
	})
	if s := read(alice); s.From != "Pat" {
		t.Errorf("alice's banner names %q, want the proctor's name Pat", s.From)
	}
	if got := mustEval[string](t, proctor, `document.querySelector('[data-identity="alice"] [data-action="talk"]').getAttribute('aria-pressed')`); got != "true" {
		t.Errorf("alice's Talk button aria-pressed=%q while talking", got)
	}
	// The proctor hears the student spoken to, and only them.
	if got := mustEval[string](t, proctor, `['alice', 'bob'].map((id) => id + ':' + document.querySelector('[data-identity="' + id + '"] video').muted).join(' ')`); got != "alice:false bob:true" {
		t.Errorf("tile audio while talking to alice: %s; want alice unmuted, bob muted", got)
	}
	// Bob's PeerConnection has had the whole time to receive something.
	time.Sleep(time.Second)
	if s := read(bob); s.packets() != 0 || s.Banner {
		t.Fatalf("bob, never spoken to, received %d RTP packets (banner shown: %v)", s.packets(), s.Banner)
	}

	mustEval[string](t, proctor, click) // stop
	waitFor(t, tabs, "alice's banner gone", func() (bool, string) {
		s := read(alice)
		return !s.Banner, fmt.Sprintf("%+v", s)
	})
	waitFor(t, tabs, "both talk-back events in the proctor's timeline", func() (bool, string) {
		got := mustEval[string](t, proctor, `[...document.querySelectorAll('#timeline li')].map((li) => li.dataset.kind).join(' ')`)
		return strings.Contains(got, "talkback_started") && strings.Contains(got, "talkback_stopped"), got
	})
	if s := read(bob); s.packets() != 0 {
		t.Errorf("bob received %d RTP packets", s.packets())
	}
}
