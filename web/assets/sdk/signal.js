// signal.js: the signaling client. One WebSocket to /v1/rtc speaking
// docs/protocol.md (v1): `join` with the token, following a cluster's
// `redirect` to the node that holds the room; every server message handled
// in order, one at a time; requests matched to their replies by `ref`;
// ping/pong for the round-trip time; `leave`. It knows nothing of media:
// what a message means is the client's business (client.js routes it).
//
// Reconnecting is a new session: rejoinAfter says whether and when.

import {FATAL_ERROR_CODES, InvigilError, RETRYABLE_CODES} from './errors.js';
import {ClientEvent} from './events.js';

/** PROTOCOL_VERSION is the `v` this SDK sends and understands. */
export const PROTOCOL_VERSION = 1;

/** PING_INTERVAL_MS is how often the client sends `ping` to measure signaling RTT. */
export const PING_INTERVAL_MS = 10_000;

// MAX_REDIRECTS bounds how many `redirect` errors one join follows: a
// cluster points at the room's node at once, so more means a loop.
const MAX_REDIRECTS = 3;

// LEAVE_GRACE_MS is how long leave() waits for the server to close the socket.
const LEAVE_GRACE_MS = 2_000;

/**
 * defaultSignalingURL is the ws(s) URL of /v1/rtc on the server this module
 * was loaded from, so an exam platform importing the SDK from
 * https://invigil.example/sdk/invigil.js talks to wss://invigil.example/v1/rtc.
 */
export function defaultSignalingURL(base = import.meta.url) {
  const url = new URL('../v1/rtc', base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

/**
 * signalingURLFor turns a node's base URL (a `redirect`'s url) into its
 * signaling WebSocket URL.
 */
export function signalingURLFor(base) {
  const u = new URL('/v1/rtc', base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * rejoinAfter says whether a `closed` event's session is worth joining
 * again (a lost node, a drain, a moment without placement), and after
 * how many milliseconds for the given attempt (0, 1, …): exponential
 * backoff from 500 ms, capped at 15 s, with full jitter, so that the
 * students of a lost node do not all come back in the same instant.
 * Returns -1 when the session should not be rejoined (the client left,
 * the token is bad, the proctor ended it, the attempts ran out).
 */
export function rejoinAfter(detail, attempt, {base = 500, cap = 15000, attempts = 12} = {}) {
  if (!detail || detail.initiator === 'client' || attempt >= attempts) return -1;
  let code = detail.error?.code;
  if (!code) code = detail.leaveReason === 'server_shutdown' ? 'shutting_down' : (detail.leaveReason ? 'left' : 'connection_lost');
  if (!RETRYABLE_CODES.has(code)) return -1;
  return Math.floor(Math.random() * Math.min(cap, base * 2 ** attempt));
}

/**
 * SignalClient is the signaling half of one session. Its host is the
 * client: {log, emit(type, detail), onMessage(msg), onClose(detail, lost)}.
 * onMessage gets, in order and awaited, every server message that is not
 * signaling's own (`pong`, `leave`, request replies and errors are); the
 * `glare` error goes there too, as it belongs to negotiation. onClose runs
 * once the session's socket is gone for good: detail is {code, reason,
 * wasClean, initiator}, or null when no socket could be opened at all; lost
 * is the connection_lost InvigilError when a joined session's socket closed
 * without a `leave` or a fatal error, else null.
 */
export class SignalClient {
  /** rtt is the last signaling round-trip time in ms, or null. */
  rtt = null;
  /** leaveReason is the reason of the server's `leave`, or null. */
  leaveReason = null;
  /** lastError is the last fatal InvigilError the server sent, or null. */
  lastError = null;

  #url;
  #token;
  #room;
  #pingInterval;
  #host;
  #ws = null;
  #chain = Promise.resolve(); // messages and the close, one at a time
  #join = null; // {resolve, reject} while joining
  #joined = false;
  #closed = false;
  #leaving = false; // leave() sent `leave`; the server's close is expected
  #redirectTo = null;
  #redirects = 0;
  #seq = 0;
  #requests = new Map(); // request id → {resolve, reject, type}
  #pingTimer = null;

  constructor({url, token, room = null, pingInterval = PING_INTERVAL_MS}, host) {
    this.#url = url;
    this.#token = token;
    this.#room = room;
    this.#pingInterval = pingInterval;
    this.#host = host;
  }

  /** url is the signaling URL the session starts at. */
  get url() {
    return this.#url;
  }

  /**
   * join opens the socket, sends `join` and resolves with the `joined`
   * message after the host has handled it; it rejects with the fatal
   * InvigilError the server sent, or connection_failed.
   */
  join() {
    return new Promise((resolve, reject) => {
      this.#join = {resolve, reject};
      this.#open(this.#url);
    });
  }

  /** send sends msg with the protocol version; false when the socket is not open. */
  send(msg) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.#host.log.debug(`[invigil] not sending ${msg.type}: socket not open`);
      return false;
    }
    ws.send(JSON.stringify({v: PROTOCOL_VERSION, ...msg}));
    return true;
  }

  /**
   * request sends msg with a fresh id and resolves with the reply of the
   * same type whose `ref` is that id, or rejects with the error naming it.
   */
  request(msg) {
    const id = `${msg.type}-${++this.#seq}`;
    return new Promise((resolve, reject) => {
      if (!this.send({...msg, id})) {
        reject(new InvigilError('not_connected', 'the signaling connection is not open'));
        return;
      }
      this.#requests.set(id, {resolve, reject, type: msg.type});
    });
  }

  /** leave sends `leave` and waits briefly for the server to close the socket. */
  async leave() {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const closed = new Promise((resolve) => ws.addEventListener('close', resolve, {once: true}));
    this.#leaving = true;
    this.send({type: 'leave'});
    await Promise.race([closed, new Promise((r) => setTimeout(r, LEAVE_GRACE_MS))]);
  }

  /** close closes the socket at once; a pending join rejects with `closed`. */
  close() {
    const ws = this.#ws;
    this.#rejectJoin(new InvigilError('closed', 'the client was closed'));
    this.#stop();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'client closed');
  }

  #open(url) {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this.#rejectJoin(new InvigilError('connection_failed', `cannot open ${url}: ${err.message}`, {cause: err}));
      this.#stop();
      this.#host.onClose(null, null);
      return;
    }
    this.#ws = ws;
    ws.addEventListener('open', () => {
      const join = {type: 'join', id: 'join', token: this.#token};
      if (this.#room) join.room = this.#room;
      this.send(join);
      this.#host.log.debug('[invigil] socket open, join sent');
    });
    ws.addEventListener('message', (ev) => this.#onFrame(ev.data));
    // Through the same queue as messages, so a fatal `error` or a `leave`
    // just before the close is handled first.
    ws.addEventListener('close', (ev) => {
      this.#chain = this.#chain.then(() => this.#onSocketClose(ev, ws)).catch((err) => {
        this.#host.log.error('[invigil] handling the close failed', err);
      });
    });
    ws.addEventListener('error', () => this.#host.log.debug('[invigil] socket error'));
  }

  #onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#host.log.warn('[invigil] dropping a frame that is not JSON');
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return;
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      this.#host.log.warn(`[invigil] dropping a v${msg.v} frame`);
      return;
    }
    // One message at a time, in order: descriptions and candidates must not
    // interleave, and announcements must not overtake the tracks they name.
    this.#chain = this.#chain.then(() => this.#handle(msg)).catch((err) => {
      this.#host.log.error(`[invigil] handling ${msg.type} failed`, err);
    });
  }

  async #handle(msg) {
    if (this.#closed) return;
    switch (msg.type) {
      case 'joined': return this.#onJoined(msg);
      case 'pong': return this.#onPong(msg);
      case 'leave': return this.#onLeave(msg);
      case 'error': return this.#onError(msg);
    }
    const req = typeof msg.ref === 'string' ? this.#requests.get(msg.ref) : undefined;
    if (req && req.type === msg.type) {
      this.#requests.delete(msg.ref);
      req.resolve(msg);
      return;
    }
    return this.#host.onMessage(msg);
  }

  async #onJoined(msg) {
    await this.#host.onMessage(msg);
    this.#joined = true;
    this.#pingTimer = setInterval(() => this.send({type: 'ping', ts: Date.now()}), this.#pingInterval);
    const join = this.#join;
    this.#join = null;
    join?.resolve(msg);
  }

  #onPong(msg) {
    if (typeof msg.ts !== 'number') return;
    this.rtt = Date.now() - msg.ts;
    this.#host.emit(ClientEvent.Pong, {rtt: this.rtt});
  }

  #onLeave(msg) {
    this.leaveReason = msg.reason ?? 'unknown';
    this.#host.log.info(`[invigil] server ended the session: ${this.leaveReason}`);
    this.#host.emit(ClientEvent.Leave, {reason: this.leaveReason});
  }

  #onError(msg) {
    const code = msg.code ?? 'internal';
    if (code === 'glare') return this.#host.onMessage(msg);
    const err = new InvigilError(code, msg.message, {fatal: FATAL_ERROR_CODES.has(code), ref: msg.ref});
    const req = this.#requests.get(msg.ref);
    if (req) {
      this.#requests.delete(msg.ref);
      req.reject(err);
      if (!err.fatal) return;
    }
    if (code === 'redirect' && this.#join && typeof msg.url === 'string' && this.#redirects < MAX_REDIRECTS) {
      // Another node holds the room: join there once this socket closes.
      this.#redirectTo = msg.url;
      this.#host.log.info(`[invigil] room is on ${msg.url}; following`);
      return;
    }
    if (err.fatal) this.lastError = err;
    if (this.#join) {
      this.#host.log.warn(`[invigil] join failed: ${code}: ${err.message}`);
      if (err.fatal) this.#rejectJoin(err);
      return;
    }
    this.#host.log.warn(`[invigil] server error ${code}: ${err.message}`);
    this.#host.emit(ClientEvent.Error, err);
  }

  #onSocketClose(ev, ws) {
    if (ws !== this.#ws || this.#closed) return; // replaced by a redirect, or closed by close()
    this.#host.log.info(`[invigil] socket closed (${ev.code} ${ev.reason})`);
    if (this.#redirectTo && this.#join) {
      const to = signalingURLFor(this.#redirectTo);
      this.#redirectTo = null;
      this.#redirects++;
      this.#host.log.info(`[invigil] joining through ${to}`);
      this.#open(to);
      return;
    }
    const pendingJoin = this.#join !== null;
    this.#rejectJoin(this.lastError ?? new InvigilError('connection_failed',
      `the signaling connection closed before joining (${ev.code})`, {fatal: true}));
    const lost = this.#joined && !pendingJoin && !this.#leaving && !this.leaveReason && !this.lastError ?
      new InvigilError('connection_lost', `the signaling connection closed (${ev.code})`, {fatal: true}) : null;
    this.#stop();
    this.#host.onClose({code: ev.code, reason: ev.reason, wasClean: ev.wasClean, initiator: this.#leaving ? 'client' : 'server'}, lost);
  }

  #rejectJoin(err) {
    const join = this.#join;
    this.#join = null;
    join?.reject(err);
  }

  #stop() {
    this.#closed = true;
    clearInterval(this.#pingTimer);
    this.#pingTimer = null;
    for (const req of this.#requests.values()) req.reject(new InvigilError('closed', 'the session closed'));
    this.#requests.clear();
  }
}
