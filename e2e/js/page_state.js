// page_state.js is evaluated in a student or proctor tab; it returns what the
// e2e assertions need as one JSON value: the client's state, the proctor
// tiles (identity and the video track ids their <video> shows), and the
// video RTP stats of the page's RTCPeerConnection.
(async () => {
  const client = window.invigilClient;
  const text = (id) => document.getElementById(id)?.textContent?.trim() ?? '';
  const errorBox = document.getElementById('error');
  const tiles = [...document.querySelectorAll('[data-identity]')].map((el) => {
    const video = el.querySelector('video');
    const stream = video?.srcObject;
    return {
      identity: el.dataset.identity,
      state: el.dataset.state ?? '',
      hasVideo: Boolean(video),
      trackIds: stream ? stream.getVideoTracks().map((t) => t.id) : [],
      videoWidth: video?.videoWidth ?? 0,
    };
  });
  const inbound = [];
  const outbound = [];
  if (client?.peerConnection) {
    const stats = await client.peerConnection.getStats();
    stats.forEach((s) => {
      if (s.kind !== 'video') return;
      if (s.type === 'inbound-rtp') {
        inbound.push({trackIdentifier: s.trackIdentifier ?? '', mid: s.mid ?? '',
          framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0});
      } else if (s.type === 'outbound-rtp') {
        outbound.push({mid: s.mid ?? '', framesEncoded: s.framesEncoded ?? 0,
          frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0});
      }
    });
  }
  return {
    clientState: client?.state ?? 'no client',
    connectionState: client?.peerConnection?.connectionState ?? '',
    participants: client ? [...client.participants.keys()] : [],
    status: text('status'),
    error: errorBox && !errorBox.hidden ? errorBox.textContent.replace(/\s+/g, ' ').trim() : '',
    tiles,
    inbound,
    outbound,
  };
})()
