// deprecated_events.js runs in a joined proctor tab: it subscribes to
// deprecated event names (one of them twice) beside the current ones and
// reads deprecated keys, recording what arrives in window.__deprecated for
// the Go test. Returns false when the client has not joined yet.
(() => {
  const client = window.invigilClient;
  if (!client || client.state !== 'joined') return false;
  const got = {current: [], old: [], oldAgain: [], sameDetail: [], tracks: [], trackIDAlias: [], pcAlias: false};
  window.__deprecated = got;
  const details = new Map();
  client.addEventListener('participantjoined', ({detail}) => {
    got.current.push(detail.participant.identity);
    details.set(detail.participant.identity, detail);
  });
  client.addEventListener('participant_joined', ({detail}) => {
    got.old.push(detail.participant.identity);
    got.sameDetail.push(details.get(detail.participant.identity) === detail);
  });
  client.addEventListener('participant_joined', ({detail}) => got.oldAgain.push(detail.participant.identity));
  client.addEventListener('track_published', ({detail}) => {
    got.tracks.push(detail.track.source);
    got.trackIDAlias.push(detail.track.trackId !== '' && detail.track.track_id === detail.track.trackId &&
      !Object.keys(detail.track).includes('track_id'));
  });
  got.pcAlias = client.pc === client.peerConnection && client.pc !== null;
  return true;
})()
