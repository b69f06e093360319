// violations.js: what a student's page reports about the student leaving
// the exam: the browser's own signals (watchViolations) and a platform's
// own detectors, both as `violation` messages (docs/protocol.md, "Reports").

/**
 * violationMessage is the `violation` message reporting kind (snake_case,
 * 1–64 of a-z0-9_; the server answers anything else with `malformed`) with
 * details, a small JSON object.
 */
export function violationMessage(kind, details = {}) {
  return {type: 'violation', kind: String(kind), details: details ?? {}};
}

/**
 * watchViolations reports the browser's own signals of a student leaving
 * the exam page through client.reportViolation: the tab hidden
 * (tab_hidden, with hidden_ms once it is back), the window losing focus
 * (window_blur), leaving fullscreen (fullscreen_exit), the camera or
 * microphone track ending (camera_revoked) or muted by the system, e.g. a
 * privacy switch (track_muted, then track_unmuted), and media devices
 * changing (devices_changed). Returns a function that stops watching.
 */
export function watchViolations(client, doc = globalThis.document, win = globalThis.window) {
  let hiddenAt = 0;
  const report = (kind, details = {}) => client.reportViolation(kind, details);
  const onVisibility = () => {
    if (doc.visibilityState === 'hidden') {
      hiddenAt = Date.now();
      report('tab_hidden');
    } else if (hiddenAt) {
      report('tab_visible', {hidden_ms: Date.now() - hiddenAt});
      hiddenAt = 0;
    }
  };
  const onBlur = () => report('window_blur');
  const onFullscreen = () => { if (!doc.fullscreenElement) report('fullscreen_exit'); };
  const onDevices = () => report('devices_changed');
  const onEnded = (ev) => report('camera_revoked', {kind: ev.target?.kind ?? ''});
  const onMute = (ev) => report('track_muted', {kind: ev.target?.kind ?? ''});
  const onUnmute = (ev) => report('track_unmuted', {kind: ev.target?.kind ?? ''});
  doc.addEventListener('visibilitychange', onVisibility);
  win.addEventListener('blur', onBlur);
  doc.addEventListener('fullscreenchange', onFullscreen);
  globalThis.navigator?.mediaDevices?.addEventListener?.('devicechange', onDevices);
  const tracks = client.localStream?.getTracks() ?? [];
  tracks.forEach((t) => {
    t.addEventListener('ended', onEnded);
    t.addEventListener('mute', onMute);
    t.addEventListener('unmute', onUnmute);
  });
  return () => {
    doc.removeEventListener('visibilitychange', onVisibility);
    win.removeEventListener('blur', onBlur);
    doc.removeEventListener('fullscreenchange', onFullscreen);
    globalThis.navigator?.mediaDevices?.removeEventListener?.('devicechange', onDevices);
    tracks.forEach((t) => {
      t.removeEventListener('ended', onEnded);
      t.removeEventListener('mute', onMute);
      t.removeEventListener('unmute', onUnmute);
    });
  };
}
