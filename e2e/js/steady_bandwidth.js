// steady_bandwidth.js runs before a page's scripts in the simulcast focus
// test. It takes Chromium's bandwidth estimators out of a test of layer
// switching: on a machine whose CPU other work starves, the browser's
// delay-based estimates collapse on loopback (a proctor's REMB was seen
// at 19 kb/s, a student's send estimate left its h encoding nothing),
// and the node then rightly keeps a focused student low. Every remote
// description the page applies is changed so that
//   - no goog-remb feedback is negotiated: a proctor sends no REMB, so the
//     node's downlink adaptation (tested with pion's REMB in signaling)
//     never caps a layer;
//   - each video codec carries x-google-min-bitrate of 700 kb/s: a
//     student's send-side estimate never falls below what q (150 kb/s)
//     and h (500 kb/s) need together.
(() => {
  const Native = window.RTCPeerConnection;
  const floor = 'x-google-min-bitrate=700';
  const codec = /^a=rtpmap:(\d+) (VP8|VP9|H264|AV1)\//;
  const steady = (sdp) => {
    const lines = sdp.split('\r\n');
    const fmtp = new Set(lines.map((l) => /^a=fmtp:(\d+) /.exec(l)?.[1]).filter(Boolean));
    let video = false;
    return lines.flatMap((line) => {
      if (line.startsWith('m=')) video = line.startsWith('m=video');
      if (/^a=rtcp-fb:\S+ goog-remb$/.test(line)) return [];
      if (!video) return [line];
      const f = /^a=fmtp:(\d+) (.*)$/.exec(line);
      if (f && !/apt=/.test(f[2])) return [`${line};${floor}`];
      const c = codec.exec(line);
      if (c && !fmtp.has(c[1])) return [line, `a=fmtp:${c[1]} ${floor}`];
      return [line];
    }).join('\r\n');
  };
  window.RTCPeerConnection = class extends Native {
    setRemoteDescription(desc, ...rest) {
      if (desc && desc.sdp) desc = {type: desc.type, sdp: steady(desc.sdp)};
      return super.setRemoteDescription(desc, ...rest);
    }
  };
})();
