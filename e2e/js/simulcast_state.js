// simulcast_state.js is evaluated in a student or proctor tab during the
// simulcast test. For a proctor it returns each tile with the inbound-rtp
// stats of the video and audio tracks its <video> plays; for a student, the
// `layers` state the SDK recorded and the outbound-rtp stats of each
// simulcast encoding (by rid). It runs in Chromium and in Firefox.
(async () => {
  const client = window.invigilClient;
  const stats = client?.peerConnection ? await client.peerConnection.getStats() : new Map();
  // Firefox's outbound-rtp has no `active`: read it from the senders'
  // parameters, which the SDK's `layers` handling sets.
  const activeByRid = new Map();
  for (const sender of client?.peerConnection?.getSenders() ?? []) {
    for (const e of sender.getParameters().encodings ?? []) {
      if (e.rid) activeByRid.set(e.rid, e.active !== false);
    }
  }
  const inbound = new Map(); // trackIdentifier → inbound-rtp
  const outbound = [];
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp') inbound.set(s.trackIdentifier, s);
    if (s.type === 'outbound-rtp' && s.kind === 'video') {
      outbound.push({
        rid: s.rid ?? '', active: s.active ?? activeByRid.get(s.rid) ?? true, ssrc: s.ssrc ?? 0,
        bytesSent: s.bytesSent ?? 0, framesEncoded: s.framesEncoded ?? 0,
        frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
        qualityLimitationReason: s.qualityLimitationReason ?? '',
        codec: stats.get(s.codecId)?.mimeType ?? '',
      });
    }
  });
  const rtp = (track) => {
    const s = track ? inbound.get(track.id) : undefined;
    if (!s) return {found: false};
    return {
      found: true, ssrc: s.ssrc ?? 0, packetsReceived: s.packetsReceived ?? 0,
      frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0,
      framesDecoded: s.framesDecoded ?? 0, framesDropped: s.framesDropped ?? 0,
      freezeCount: s.freezeCount ?? 0, totalFreezesDuration: s.totalFreezesDuration ?? 0,
      keyFramesDecoded: s.keyFramesDecoded ?? 0, pliCount: s.pliCount ?? 0,
      codec: stats.get(s.codecId)?.mimeType ?? '',
    };
  };
  const tiles = [...document.querySelectorAll('[data-identity]')].map((el) => {
    const stream = el.querySelector('video')?.srcObject ?? null;
    const box = el.getBoundingClientRect();
    return {
      identity: el.dataset.identity,
      focused: el.classList.contains('is-focused'),
      height: box.height,
      top: box.top,
      bottom: box.bottom,
      video: rtp(stream?.getVideoTracks()[0]),
      audio: rtp(stream?.getAudioTracks()[0]),
    };
  });
  const layers = [...(client?.layers?.values() ?? [])].map((l) => ({
    mid: l.mid, active: l.active, requested: l.requested, error: l.error ? `${l.error.code}: ${l.error.message}` : '',
  }));
  return {
    clientState: client?.state ?? 'no client',
    connectionState: client?.peerConnection?.connectionState ?? '',
    viewport: {width: window.innerWidth, height: window.innerHeight},
    tiles,
    layers,
    outbound,
  };
})()
