// conceal_stats.js reads, in the student's tab, each simulcast
// encoding's outbound-rtp counters (what it sent, and the keyframe
// requests and NACKs it received) and how many signaling messages the
// page has received so far (js/conceal_probe.js).
(async () => {
  const pc = window.invigilClient?.peerConnection;
  const out = [];
  if (pc) {
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        out.push({rid: s.rid ?? '', active: s.active ?? true, bytesSent: s.bytesSent ?? 0, framesEncoded: s.framesEncoded ?? 0,
          pliCount: s.pliCount ?? 0, firCount: s.firCount ?? 0, nackCount: s.nackCount ?? 0, frameHeight: s.frameHeight ?? 0, keyFramesEncoded: s.keyFramesEncoded ?? 0});
      }
    });
  }
  return {t: Date.now(), outbound: out, messages: (window.__invigilInbound ?? []).length};
})()
