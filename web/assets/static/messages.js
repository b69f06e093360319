// Human-readable explanations of the SDK's error codes and leave reasons,
// shared by the student and proctor pages. Codes come from docs/protocol.md
// and docs/sdk.md.

const ERRORS = {
  token_missing: ['No join link', 'This page was opened without a join token. Open it again from your exam platform.'],
  token_invalid: ['Invalid exam link', 'This exam link is not valid. Open it again from your exam platform.'],
  token_expired: ['Exam link expired', 'This exam link has expired. Go back to your exam platform to get a new one.'],
  token_not_yet_valid: ['Too early', 'This exam link is not active yet. Try again at the scheduled start time.'],
  role_unknown: ['Invalid exam link', 'This exam link does not grant access to a proctored session.'],
  room_mismatch: ['Wrong exam room', 'This exam link belongs to a different exam room.'],
  room_ended: ['The exam has ended', 'This exam has been ended for everyone. You can close this page.'],
  revoked: ['Access withdrawn', 'Your access to this exam has been withdrawn. Contact exam support.'],
  room_full: ['Exam room full', 'The exam room has reached its maximum number of participants. Contact exam support.'],
  node_full: ['Server busy', 'The proctoring server is at capacity. Please try again in a minute.'],
  shutting_down: ['Server restarting', 'The proctoring server is restarting. Reload this page in a moment.'],
  slow_consumer: ['Connection too slow', 'Your connection could not keep up. Check your network and reload the page.'],
  join_timeout: ['Connection timed out', 'Joining took too long. Check your network and reload the page.'],
  unsupported_version: ['Update needed', 'This page is out of date. Reload it to get the current version.'],
  connection_failed: ['Cannot reach the proctoring server', 'Check your internet connection and reload the page.'],
  connection_lost: ['Connection lost', 'The connection to the proctoring server was lost. Reload the page to reconnect.'],
  negotiation_failed: ['Media setup failed', 'Your browser could not set up the video connection. Reload the page or try another browser.'],
  media_denied: ['Camera blocked', 'Allow access to your camera and microphone in the browser (the icon in the address bar), then reload the page.'],
  media_not_found: ['No camera found', 'Connect a camera and microphone, then reload the page.'],
  media_unavailable: ['Camera busy', 'Another application is using your camera. Close it, then reload the page.'],
  media_failed: ['Camera error', 'Your camera could not be started. Reload the page or try another browser.'],
};

const LEAVES = {
  server_shutdown: ['Server restarting', 'The proctoring server is restarting. Reload this page in a moment.'],
  replaced: ['Opened elsewhere', 'This session was opened in another tab or device, so this one was disconnected.'],
  room_closed: ['Session ended', 'The exam session has ended. You can close this page.'],
};

/** describeError returns {title, detail} for an SDK or server error code. */
export function describeError(code, fallback = '') {
  const [title, detail] = ERRORS[code] ?? ['Something went wrong', fallback || `Error: ${code}. Reload the page; if it keeps happening, contact exam support.`];
  return {title, detail, code};
}

/** describeLeave returns {title, detail} for a server `leave` reason, or null. */
export function describeLeave(reason) {
  const entry = LEAVES[reason];
  return entry ? {title: entry[0], detail: entry[1], code: reason} : null;
}

/** describeClose explains a `closed` event's detail for a person. */
export function describeClose(detail) {
  if (detail.error) return describeError(detail.error.code, detail.error.message);
  if (detail.leaveReason) {
    return describeLeave(detail.leaveReason) ?? {title: 'Session ended', detail: `The server ended the session (${detail.leaveReason}).`, code: detail.leaveReason};
  }
  return describeError('connection_lost');
}
