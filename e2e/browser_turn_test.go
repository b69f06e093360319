package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/invigil/invigil/internal/testclient"
)

// forceRelayJS makes every RTCPeerConnection the page creates use only
// TURN relays, as a student behind a firewall that blocks everything but
// the TURN server would; the page itself is not changed.
const forceRelayJS = `(() => {
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}, ...rest) { super({...config, iceTransportPolicy: 'relay'}, ...rest); }
  };
})();`

// relayStatsJS reports the student's selected candidate pair's local type
// and the video it encodes.
const relayStatsJS = `(async () => {
  const pc = window.invigilClient?.peerConnection;
  if (!pc) return {local: '', framesEncoded: 0, policy: ''};
  const stats = await pc.getStats();
  let local = '', framesEncoded = 0;
  stats.forEach((s) => {
    if (s.type === 'candidate-pair' && s.state === 'succeeded' && s.nominated) {
      local = stats.get(s.localCandidateId)?.candidateType ?? '';
    }
    if (s.type === 'outbound-rtp' && s.kind === 'video') framesEncoded += s.framesEncoded ?? 0;
  });
  return {local, framesEncoded, policy: pc.getConfiguration().iceTransportPolicy};
})()`

type relayStats struct {
	Local         string `json:"local"`
	FramesEncoded int    `json:"framesEncoded"`
	Policy        string `json:"policy"`
}

// TestBrowserRelayOnly: a student page whose RTCPeerConnection may only
// use relays reaches the SFU through the node's embedded TURN server with
// the credentials joined hands out, and the proctor decodes its video.
func TestBrowserRelayOnly(t *testing.T) {
	chromium := requireChromium(t)
	checkLeaks(t)
	bin := invigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), hardTimeout)
	t.Cleanup(cancel)

	port := testclient.FreeUDPTCPPort(t)
	srv := startServer(t, ctx, bin, apiSecret, "--turn-udp-port", strconv.Itoa(port))
	studentToken := srv.token(t, ctx, room, "alice", "student", "Alice")
	proctorToken := srv.token(t, ctx, room, "pat", "proctor", "Pat")

	br := startBrowser(t, ctx, chromium)
	student := br.openTabWithInit(t, "student-relay", srv.url("/student#token="+studentToken), forceRelayJS)
	proctor := br.openTab(t, "proctor", srv.url("/proctor#token="+proctorToken))

	deadline := time.Now().Add(mediaTimeout)
	var rs relayStats
	var decoded int
	for {
		var err error
		if rs, err = evaluate[relayStats](student, relayStatsJS); err != nil {
			t.Fatal(err)
		}
		decoded, err = evaluate[int](proctor, `(async () => {
  const pc = window.invigilClient?.peerConnection; let n = 0;
  if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0; });
  return n;
})()`)
		if err != nil {
			t.Fatal(err)
		}
		if rs.Local == "relay" && decoded > 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: student %+v, proctor decoded %d frames", mediaTimeout, rs, decoded)
		}
		time.Sleep(pollInterval)
	}
	if rs.Policy != "relay" {
		t.Fatalf("the init script did not force relay: policy %q", rs.Policy)
	}
	t.Logf("student's selected pair is local %s; proctor decoded %d frames through TURN", rs.Local, decoded)
	if !strings.Contains(srv.logs.String(), "turn_addr=") {
		t.Errorf("server did not log its TURN address")
	}
}
