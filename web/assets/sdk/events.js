// events.js: the names of the events an InvigilClient dispatches, and the
// deprecated names and detail keys that keep working until they go.
//
// The convention (docs/sdk.md, "Events"): an event name is lowercase words
// run together, as the DOM's own are (`connectionstatechange`); the keys of
// every detail object are camelCase. Values are not renamed: codes, kinds
// and reasons stay the protocol's snake_case strings, and an audit event's
// free-form `details` stay exactly as the trail records them.

/**
 * ClientEvent names every event an InvigilClient dispatches; listen with
 * `client.addEventListener(ClientEvent.ParticipantJoined, …)`.
 */
export const ClientEvent = Object.freeze({
  Joined: 'joined',
  ParticipantJoined: 'participantjoined',
  ParticipantLeft: 'participantleft',
  TrackPublished: 'trackpublished',
  TrackUnpublished: 'trackunpublished',
  Track: 'track',
  ConnectionStateChange: 'connectionstatechange',
  Error: 'error',
  Pong: 'pong',
  Message: 'message',
  Talkback: 'talkback',
  ScreenEnded: 'screenended',
  Ended: 'ended',
  AuditEvent: 'auditevent',
  Layers: 'layers',
  Leave: 'leave',
  Closed: 'closed',
});

/** DEPRECATIONS_END is the release that removes the deprecated names. */
export const DEPRECATIONS_END = '0.2.0';

/**
 * DEPRECATED_EVENTS maps each old event name to its ClientEvent name. An
 * old name still gets its events (dispatched right after the new one, with
 * the same detail) until DEPRECATIONS_END; subscribing to it warns once.
 */
export const DEPRECATED_EVENTS = Object.freeze({
  participant_joined: ClientEvent.ParticipantJoined,
  participant_left: ClientEvent.ParticipantLeft,
  track_published: ClientEvent.TrackPublished,
  track_unpublished: ClientEvent.TrackUnpublished,
});

// constantOf maps an event name to its ClientEvent key, for warnings.
const constantOf = new Map(Object.entries(ClientEvent).map(([key, name]) => [name, key]));

// oldNameOf maps a current event name to its deprecated alias.
const oldNameOf = new Map(Object.entries(DEPRECATED_EVENTS).map(([old, name]) => [name, old]));

/** deprecatedAlias returns the old name dispatched beside type, if any. */
export function deprecatedAlias(type) {
  return oldNameOf.get(type);
}

// warned holds what has been warned about on this page: each deprecated
// name warns once, however many clients (rejoins) use it.
const warned = new Set();

/**
 * warnDeprecated warns once per page that `what` is deprecated in favour of
 * `instead`, through warn (a logger's warn; console.warn by default).
 */
export function warnDeprecated(what, instead, warn = console.warn) {
  if (warned.has(what)) return;
  warned.add(what);
  warn(`[invigil] ${what} is deprecated and goes in ${DEPRECATIONS_END}: use ${instead}`);
}

/**
 * warnDeprecatedEvent warns once per page when type is a deprecated event
 * name (a page subscribing to it).
 */
export function warnDeprecatedEvent(type, warn) {
  if (!Object.hasOwn(DEPRECATED_EVENTS, type)) return;
  const name = DEPRECATED_EVENTS[type];
  warnDeprecated(`the event name '${type}'`, `'${name}' (ClientEvent.${constantOf.get(name)})`, warn);
}

/**
 * withDeprecatedKeys adds to obj read-only, non-enumerable getters under
 * old (snake_case) keys that return the camelCase key's value and warn
 * once: renamed maps old key → new key. JSON and spreading see only the
 * new keys.
 */
export function withDeprecatedKeys(obj, renamed, warn) {
  for (const [old, key] of Object.entries(renamed)) {
    Object.defineProperty(obj, old, {
      enumerable: false,
      get() {
        warnDeprecated(`the detail key ${old}`, key, warn);
        return obj[key];
      },
    });
  }
  return obj;
}
