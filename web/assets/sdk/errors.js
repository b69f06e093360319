// errors.js: the one error type the SDK rejects with and dispatches, and
// the sets of server codes that decide what happens after an error.

/**
 * FATAL_ERROR_CODES are the server error codes after which the server closes
 * the socket (docs/protocol.md, "error").
 */
export const FATAL_ERROR_CODES = Object.freeze(new Set([
  'unsupported_version', 'too_large', 'join_timeout', 'token_missing',
  'token_invalid', 'token_expired', 'token_not_yet_valid', 'role_unknown',
  'room_mismatch', 'room_full', 'node_full', 'slow_consumer', 'shutting_down',
  'draining', 'too_many_rooms', 'redirect', 'unavailable',
]));

/**
 * RETRYABLE_CODES are the reasons a lost or refused session is worth
 * joining again, through the same (public) URL: the node went away or is
 * draining, or the cluster could not place the room for a moment.
 */
export const RETRYABLE_CODES = Object.freeze(new Set([
  'connection_failed', 'connection_lost', 'shutting_down', 'draining',
  'node_full', 'too_many_rooms', 'unavailable', 'slow_consumer',
]));

/**
 * InvigilError is what the SDK rejects with and what `error` events carry.
 * `code` is a server code from docs/protocol.md or one of the SDK's own
 * (connection_failed, connection_lost, not_connected, closed,
 * negotiation_failed, layers_failed, media_denied, media_not_found,
 * media_unavailable, media_failed).
 */
export class InvigilError extends Error {
  constructor(code, message, {fatal = false, ref = undefined, cause = undefined} = {}) {
    super(message || code, cause === undefined ? undefined : {cause});
    this.name = 'InvigilError';
    this.code = code;
    this.fatal = fatal;
    this.ref = ref;
  }
}

// MEDIA_CODES maps getUserMedia/getDisplayMedia DOMException names to the
// SDK's media codes, so a page can explain the problem to a student.
const MEDIA_CODES = Object.freeze({
  NotAllowedError: 'media_denied',
  SecurityError: 'media_denied',
  NotFoundError: 'media_not_found',
  OverconstrainedError: 'media_not_found',
  NotReadableError: 'media_unavailable',
  AbortError: 'media_unavailable',
});

/** mediaError turns a capture failure into an InvigilError (media_*). */
export function mediaError(err) {
  return new InvigilError(MEDIA_CODES[err?.name] ?? 'media_failed', err?.message || String(err), {cause: err});
}
