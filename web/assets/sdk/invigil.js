// Invigil browser SDK: one ES module, no dependencies, no build step.
//
// It speaks the signaling protocol of docs/protocol.md (v1) over one WebSocket
// and runs one RTCPeerConnection as the POLITE peer of "perfect negotiation"
// (the server is the impolite one). Usage is documented in docs/sdk.md.
//
//   import {InvigilClient, tokenFromLocation} from 'https://invigil.example/sdk/invigil.js';
//   const client = new InvigilClient({token: tokenFromLocation()});
//   await client.connect();
//   await client.publishCamera();

/** PROTOCOL_VERSION is the `v` this SDK sends and understands. */
export const PROTOCOL_VERSION = 1;

/** PING_INTERVAL_MS is how often the client sends `ping` to measure signaling RTT. */
export const PING_INTERVAL_MS = 10_000;

// MAX_HELD_CANDIDATES bounds the remote candidates queued before a remote
// description exists; the server holds at most 64 of ours, we mirror that.
const MAX_HELD_CANDIDATES = 64;

// MAX_HELD_TRACKS bounds remote tracks whose publisher is not known yet.
const MAX_HELD_TRACKS = 64;

// LEAVE_GRACE_MS is how long leave() waits for the server to close the socket.
const LEAVE_GRACE_MS = 2_000;

/** FATAL_ERROR_CODES are the server error codes after which the socket closes. */
export const FATAL_ERROR_CODES = Object.freeze(new Set([
  'unsupported_version', 'too_large', 'join_timeout', 'token_missing',
  'token_invalid', 'token_expired', 'token_not_yet_valid', 'role_unknown',
  'room_mismatch', 'room_full', 'node_full', 'slow_consumer', 'shutting_down',
  'draining', 'too_many_rooms', 'redirect', 'unavailable',
]));

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

/** MAX_REDIRECTS bounds how many `redirect` errors one connect() follows. */
const MAX_REDIRECTS = 3;

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
 * CAMERA says how the camera is captured: 640×360 at most 30 fps; maxBitrate
 * is the 640×360 layer's. cameraEncodings() is the one place that turns it
 * into simulcast encodings.
 */
export const CAMERA = Object.freeze({width: 640, height: 360, maxFrameRate: 30, maxBitrate: 500_000});

/**
 * SIMULCAST_LAYERS are the camera's simulcast encodings, lowest first, by the
 * RIDs docs/protocol.md maps to qualities: q (320×180), h (640×360) and, when
 * the camera gives at least 1280×720, f (1280×720).
 */
export const SIMULCAST_LAYERS = Object.freeze([
  Object.freeze({rid: 'q', maxBitrate: 150_000}),
  Object.freeze({rid: 'h', maxBitrate: CAMERA.maxBitrate}),
  Object.freeze({rid: 'f', maxBitrate: 1_200_000}),
]);

/**
 * SCREEN says how a screen share is sent: one layer (no simulcast: text
 * must stay legible, so it is never scaled down for a grid), at most 5
 * frames a second and 1 Mb/s, with the encoder told it carries detail.
 */
export const SCREEN = Object.freeze({maxFrameRate: 5, maxBitrate: 1_000_000, maxWidth: 1920, maxHeight: 1080});

// MAX_VIEW_TILES is the most tiles a `view` message may list (docs/protocol.md).
const MAX_VIEW_TILES = 500;

function cameraConstraints(video) {
  const base = {
    width: {ideal: CAMERA.width},
    height: {ideal: CAMERA.height},
    frameRate: {max: CAMERA.maxFrameRate},
  };
  return typeof video === 'object' ? {...base, ...video} : base;
}

function microphoneConstraints(audio) {
  const base = {echoCancellation: true, noiseSuppression: true, autoGainControl: true};
  return typeof audio === 'object' ? {...base, ...audio} : base;
}

// cameraEncodings lists the simulcast encodings for a camera track, lowest
// first (#onLayers relies on that order): the highest is the capture size,
// each lower one half as high. Two layers at 640×360; a third (f) only when
// the camera gives 1280×720 or more, in either orientation.
function cameraEncodings(track) {
  const {width = 0, height = 0} = track.getSettings?.() ?? {};
  const n = Math.max(width, height) >= 1280 && Math.min(width, height) >= 720 ? 3 : 2;
  return SIMULCAST_LAYERS.slice(0, n).map(({rid, maxBitrate}, i) => ({
    rid, maxBitrate, maxFramerate: CAMERA.maxFrameRate, active: true, scaleResolutionDownBy: 2 ** (n - 1 - i),
  }));
}

// preferVP8 puts VP8 first in the camera's codec list: the server rewrites
// VP8 picture IDs when it switches layers, so the subscriber sees one stream.
function preferVP8(transceiver) {
  const codecs = globalThis.RTCRtpReceiver?.getCapabilities?.('video')?.codecs;
  if (!codecs || typeof transceiver.setCodecPreferences !== 'function') return;
  const vp8 = (c) => c.mimeType.toLowerCase() === 'video/vp8';
  transceiver.setCodecPreferences([...codecs.filter(vp8), ...codecs.filter((c) => !vp8(c))]);
}

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

/**
 * tokenFromLocation returns the join token from a URL fragment such as
 * `#token=eyJ…` (other `&key=value` pairs may follow), or null. Tokens travel
 * in the fragment so they never reach server logs, proxies or Referer headers.
 */
export function tokenFromLocation(location = globalThis.location) {
  const hash = location?.hash ?? '';
  if (hash.length < 2) return null;
  const token = new URLSearchParams(hash.slice(1)).get('token');
  return token || null;
}

/**
 * tokenClaims decodes a join token's claims WITHOUT verifying it (the server
 * does that): for a page's own decisions before it joins, e.g. whether it is
 * a student's second device (`device`). Returns null for a malformed token.
 */
export function tokenClaims(token) {
  try {
    const part = String(token).split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part.padEnd(part.length + (4 - part.length % 4) % 4, '=')));
  } catch {
    return null;
  }
}

/**
 * participantKey is the key of client.participants for a participant: its
 * identity, or `identity/device` for a student's additional device (a
 * phone), which is a participant of its own.
 */
export function participantKey(info) {
  return info.device ? `${info.identity}/${info.device}` : info.identity;
}

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

const quietLogger = {debug() {}, info() {}, warn: console.warn.bind(console), error: console.error.bind(console)};

/**
 * InvigilClient is one participant's session: a signaling WebSocket plus one
 * RTCPeerConnection. It is an EventTarget; every event is a CustomEvent whose
 * `detail` is documented in docs/sdk.md.
 */
export class InvigilClient extends EventTarget {
  /** pc is the RTCPeerConnection, created when the server answers `joined`. */
  pc = null;
  /** participants maps identity → participant this role may see. */
  participants = new Map();
  /** self is this participant as the server described it in `joined`. */
  self = null;
  /** room is the room name from `joined`. */
  room = null;
  /** state is 'new', 'connecting', 'joined' or 'closed'. */
  state = 'new';
  /** localStream is the camera/microphone stream opened by openCamera(). */
  localStream = null;
  /** rtt is the last signaling round-trip time in ms (from ping/pong), or null. */
  rtt = null;
  /** iceServers are the ICE servers the server handed out in `joined`. */
  iceServers = [];
  /** serverVersion is the server's version string from `joined`. */
  serverVersion = null;
  /** layers maps a published m-line's mid → the last `layers` event detail. */
  layers = new Map();
  /** require lists what this student must publish to be admitted (from `joined`). */
  require = [];
  /** screenStream is the screen share publishScreen() opened, or null. */
  screenStream = null;

  #token;
  #options;
  #log;
  #ws = null;
  #connecting = null;
  #joinWaiter = null;
  #chain = Promise.resolve();
  #pingTimer = null;
  #seq = 0;
  #makingOffer = false;
  #settingRemoteAnswer = false;
  #pendingOfferID = null;
  #heldCandidates = [];
  #heldTracks = new Map(); // publisher sid → [RTCTrackEvent]
  #talkbacks = new Map(); // a proctor's stream id → {from, talking, stream}
  #senders = new Map(); // RTCRtpTransceiver → {source: 'camera'|'microphone'|'screen', stream}
  #ownsLocalStream = false;
  #leaveReason = null;
  #leaving = false; // leave() sent `leave`; the server's close is expected
  #lastError = null;
  #closedDispatched = false;
  #redirectTo = null;
  #redirects = 0;
  #requests = new Map(); // request id → {resolve, reject, type}: replies matched by ref

  /**
   * @param {object} options
   * @param {string} options.token the join token (required).
   * @param {string} [options.url] signaling URL; default defaultSignalingURL().
   * @param {string} [options.room] room to assert; must equal the token's.
   * @param {number} [options.pingInterval] ms between pings; default 10000.
   * @param {RTCConfiguration} [options.rtcConfiguration] merged into the PeerConnection config.
   * @param {object} [options.logger] {debug, info, warn, error}; default: warnings and errors on console.
   */
  constructor(options = {}) {
    super();
    if (!options.token) throw new InvigilError('token_missing', 'InvigilClient needs a join token');
    this.#token = options.token;
    this.#options = {
      url: options.url ?? defaultSignalingURL(),
      room: options.room ?? null,
      pingInterval: options.pingInterval ?? PING_INTERVAL_MS,
      rtcConfiguration: options.rtcConfiguration ?? {},
    };
    this.#log = options.logger ?? quietLogger;
  }

  /** url is the signaling URL this client connects to. */
  get url() {
    return this.#options.url;
  }

  /**
   * connect opens the WebSocket, sends `join` and resolves with the `joined`
   * message once the server accepts. It rejects with an InvigilError (for
   * example code token_expired or room_full) when the join fails; such errors
   * are not also dispatched as `error` events. Calling it again returns the
   * same promise.
   */
  connect() {
    if (this.#connecting) return this.#connecting;
    if (this.state === 'closed') {
      return Promise.reject(new InvigilError('closed', 'this client is closed; create a new one'));
    }
    this.state = 'connecting';
    this.#connecting = new Promise((resolve, reject) => {
      this.#joinWaiter = {resolve, reject};
      this.#openSocket(this.#options.url);
    });
    return this.#connecting;
  }

  /**
   * signalingURLFor turns a node's base URL (a `redirect`'s url) into its
   * signaling WebSocket URL.
   */
  static signalingURLFor(base) {
    const u = new URL('/v1/rtc', base);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.href;
  }

  #openSocket(url) {
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this.#rejectJoin(new InvigilError('connection_failed', `cannot open ${url}: ${err.message}`, {cause: err}));
      this.#teardown();
      return;
    }
    this.#ws = ws;
    ws.addEventListener('open', () => {
      const join = {type: 'join', id: 'join', token: this.#token};
      if (this.#options.room) join.room = this.#options.room;
      this.#send(join);
      this.#log.debug('[invigil] socket open, join sent');
    });
    ws.addEventListener('message', (ev) => this.#onFrame(ev.data));
    // Through the same queue as messages, so a fatal `error` or a `leave`
    // just before the close is handled first.
    ws.addEventListener('close', (ev) => {
      this.#chain = this.#chain.then(() => this.#onSocketClose(ev, ws)).catch((err) => {
        this.#log.error('[invigil] handling the close failed', err);
      });
    });
    ws.addEventListener('error', () => this.#log.debug('[invigil] socket error'));
  }

  /**
   * openCamera asks for camera and/or microphone (getUserMedia with the SDK's
   * camera constraints) without publishing, e.g. for a preflight self-view.
   * It reuses tracks it opened before. Rejects with an InvigilError
   * (media_denied, media_not_found, media_unavailable, media_failed).
   */
  async openCamera({video = true, audio = true} = {}) {
    const stream = this.localStream ?? new MediaStream();
    const wantVideo = video && stream.getVideoTracks().length === 0;
    const wantAudio = audio && stream.getAudioTracks().length === 0;
    if (wantVideo || wantAudio) {
      let got;
      try {
        got = await navigator.mediaDevices.getUserMedia({
          video: wantVideo ? cameraConstraints(video) : false,
          audio: wantAudio ? microphoneConstraints(audio) : false,
        });
      } catch (err) {
        throw mediaError(err);
      }
      if (this.state === 'closed') {
        got.getTracks().forEach((t) => t.stop());
        throw new InvigilError('closed', 'the client closed while the camera was opening');
      }
      got.getTracks().forEach((t) => stream.addTrack(t));
      this.localStream = stream;
      this.#ownsLocalStream = true;
    }
    return stream;
  }

  /**
   * publishCamera opens the camera (and microphone) if needed and sends them
   * to the server on sendonly transceivers; negotiation follows by itself.
   * Waits for connect() if it is in progress. Resolves with the MediaStream.
   */
  async publishCamera({video = true, audio = true} = {}) {
    await this.#whenJoined();
    const stream = await this.openCamera({video, audio});
    const published = new Set(this.pc.getSenders().map((s) => s.track).filter(Boolean));
    for (const track of stream.getTracks()) {
      if (published.has(track)) continue;
      if ((track.kind === 'video' && !video) || (track.kind === 'audio' && !audio)) continue;
      this.#addSender(track, stream, track.kind === 'video' ? 'camera' : 'microphone');
      this.#log.info(`[invigil] publishing ${track.kind} (${track.label})`);
    }
    return stream;
  }

  /**
   * publishScreen asks the student to share their screen (getDisplayMedia;
   * browsers may require a click first) and sends it as a second video
   * track, source `screen`, without simulcast (see SCREEN). When the student
   * stops sharing from the browser's own bar, the track is unpublished (the
   * proctor sees it at once) and a `screenended` event is dispatched; call
   * publishScreen again to share anew. Resolves with the MediaStream.
   */
  async publishScreen() {
    await this.#whenJoined();
    if (this.screenStream?.getVideoTracks().some((t) => t.readyState === 'live')) return this.screenStream;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({
        video: {frameRate: {max: SCREEN.maxFrameRate}, width: {max: SCREEN.maxWidth}, height: {max: SCREEN.maxHeight}},
        audio: false,
      });
    } catch (err) {
      throw mediaError(err);
    }
    if (this.state === 'closed') {
      stream.getTracks().forEach((t) => t.stop());
      throw new InvigilError('closed', 'the client closed while the screen was being chosen');
    }
    const track = stream.getVideoTracks()[0];
    if ('contentHint' in track) track.contentHint = 'detail';
    const transceiver = this.#addSender(track, stream, 'screen');
    track.addEventListener('ended', () => {
      // The student pressed "Stop sharing": stop sending, so the server
      // unpublishes the track (a required one is an event at once).
      if (this.state !== 'closed' && this.pc?.signalingState !== 'closed') {
        try {
          this.pc.removeTrack(transceiver.sender);
        } catch (err) {
          this.#log.warn(`[invigil] removing the ended screen share failed: ${err.message}`);
        }
      }
      this.#senders.delete(transceiver);
      if (this.screenStream === stream) this.screenStream = null;
      this.#emit('screenended', {});
    });
    this.screenStream = stream;
    this.#log.info(`[invigil] publishing the screen (${track.label})`);
    return stream;
  }

  /**
   * focus asks the server for one student's high simulcast layer (proctors;
   * a student gets `forbidden`); '' or null returns to the grid. Returns false
   * when the socket is not open.
   */
  focus(identity) {
    return this.#send({type: 'focus', identity: String(identity ?? '')});
  }

  /**
   * Proctor interventions about one student of the room; each is an audit
   * event. message shows the text on the student's page (it answers with
   * an acknowledgement, another event); end closes the student's session
   * with the reason shown to them. Return false when not sent.
   */
  sendMessage(identity, text) {
    return this.#send({type: 'message', identity: String(identity), text: String(text)});
  }

  flag(identity, text = '') {
    return this.#send({type: 'flag', identity: String(identity), text: String(text)});
  }

  note(identity, text) {
    return this.#send({type: 'note', identity: String(identity), text: String(text)});
  }

  end(identity, reason = '') {
    return this.#send({type: 'end', identity: String(identity), text: String(reason)});
  }

  /**
   * startTalkback makes this proctor's microphone heard by one student, and
   * by nobody else (the server forwards it to that student alone). The
   * microphone is opened and published the first time; turning to another
   * student moves it. Resolves once the request is sent; the student's page
   * gets a `talkback` event, the proctor a talkback_started audit event.
   */
  async startTalkback(identity) {
    await this.#whenJoined();
    let mic = this.#talkbackSender()?.sender.track;
    if (!mic) {
      let stream;
      try {
        stream = await navigator.mediaDevices.getUserMedia({audio: microphoneConstraints(true), video: false});
      } catch (err) {
        throw mediaError(err);
      }
      mic = stream.getAudioTracks()[0];
      this.#addSender(mic, stream, 'talkback');
      this.#log.info(`[invigil] publishing the talk-back microphone (${mic.label})`);
    }
    mic.enabled = true;
    if (!this.#send({type: 'talkback', identity: String(identity)})) {
      throw new InvigilError('not_connected', 'the signaling connection is not open');
    }
  }

  /** stopTalkback stops talking; the microphone stays published, muted. */
  stopTalkback() {
    const mic = this.#talkbackSender()?.sender.track;
    if (mic) mic.enabled = false;
    return this.#send({type: 'talkback', identity: ''});
  }

  #talkbackSender() {
    for (const [t, info] of this.#senders) if (info.source === 'talkback') return t;
    return undefined;
  }

  /**
   * requestDeviceLink asks the server for a link that adds the student's
   * phone as a second camera (students, from their main device). Resolves
   * with {device, url, qr, expires}: `url` opens the student page on the
   * phone, `qr` is a PNG data: URL of it to show for scanning, `expires` the
   * link's end (Unix seconds). Rejects with an InvigilError (forbidden,
   * not_connected).
   */
  async requestDeviceLink() {
    await this.#whenJoined();
    return this.#request({type: 'device_link'});
  }

  // #request sends msg with a fresh id and resolves with the reply whose ref
  // is that id, or rejects with the error that names it.
  #request(msg) {
    const id = `${msg.type}-${++this.#seq}`;
    return new Promise((resolve, reject) => {
      if (!this.#send({...msg, id})) {
        reject(new InvigilError('not_connected', 'the signaling connection is not open'));
        return;
      }
      this.#requests.set(id, {resolve, reject, type: msg.type});
    });
  }

  /** acknowledge tells the proctor a `message` was seen (students). */
  acknowledge(messageId) {
    return this.#send({type: 'message_ack', message_id: Number(messageId)});
  }

  /**
   * reportViolation records what a detector saw on a student's page: the
   * page's own signals (tab_hidden, window_blur, fullscreen_exit,
   * camera_revoked, devices_changed; see watchViolations) or a platform's
   * own (e.g. face_missing from its model). kind is snake_case; details a
   * small JSON object. The server keeps 10 at once, then 30 a minute.
   */
  reportViolation(kind, details = {}) {
    return this.#send({type: 'violation', kind: String(kind), details});
  }

  /**
   * setView tells the server which student tiles the proctor sees now and how
   * high they are in CSS px, [{identity, height}]: only their video is
   * forwarded (audio always is), at the high layer from 270 px. null means
   * every tile at the low layer (the default). Returns false when not sent.
   */
  setView(tiles) {
    const list = tiles == null ? null : Array.from(tiles).slice(0, MAX_VIEW_TILES).map((t) => ({
      identity: String(t.identity), height: Math.max(0, Math.round(Number(t.height) || 0)),
    }));
    return this.#send({type: 'view', tiles: list});
  }

  /**
   * leave tells the server this participant is leaving, waits briefly for the
   * server to close the socket, then closes everything. Resolves when closed.
   */
  async leave() {
    if (this.state === 'closed') return;
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const closed = new Promise((resolve) => ws.addEventListener('close', resolve, {once: true}));
      this.#leaving = true;
      this.#send({type: 'leave'});
      await Promise.race([closed, new Promise((r) => setTimeout(r, LEAVE_GRACE_MS))]);
    }
    this.close();
  }

  /**
   * close ends the session at once without a `leave` (the server sees a
   * disconnect): closes the socket and the PeerConnection and stops the
   * tracks openCamera() opened. Dispatches `closed` once.
   */
  close() {
    if (this.#closedDispatched) return;
    const ws = this.#ws;
    this.#rejectJoin(new InvigilError('closed', 'the client was closed'));
    this.#teardown();
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, 'client closed');
    this.#dispatchClosed({code: 1000, reason: 'client closed', wasClean: true, initiator: 'client'});
  }

  /** participantBySid returns the participant with this sid, or undefined. */
  participantBySid(sid) {
    for (const p of this.participants.values()) if (p.sid === sid) return p;
    return undefined;
  }

  // ---- signaling -------------------------------------------------------

  #send(msg) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      this.#log.debug(`[invigil] not sending ${msg.type}: socket not open`);
      return false;
    }
    ws.send(JSON.stringify({v: PROTOCOL_VERSION, ...msg}));
    return true;
  }

  #onFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      this.#log.warn('[invigil] dropping a frame that is not JSON');
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return;
    if (msg.v !== undefined && msg.v !== PROTOCOL_VERSION) {
      this.#log.warn(`[invigil] dropping a v${msg.v} frame`);
      return;
    }
    // One message at a time, in order: descriptions and candidates must not
    // interleave, and announcements must not overtake the tracks they name.
    this.#chain = this.#chain.then(() => this.#handle(msg)).catch((err) => {
      this.#log.error(`[invigil] handling ${msg.type} failed`, err);
    });
  }

  async #handle(msg) {
    if (this.state === 'closed') return;
    switch (msg.type) {
      case 'joined': return this.#onJoined(msg);
      case 'offer':
      case 'answer': return this.#onDescription(msg);
      case 'candidate': return this.#onCandidate(msg);
      case 'participant_joined': return this.#onParticipantJoined(msg);
      case 'participant_left': return this.#onParticipantLeft(msg);
      case 'track_published': return this.#onTrackPublished(msg);
      case 'track_unpublished': return this.#onTrackUnpublished(msg);
      case 'layers': return this.#onLayers(msg);
      case 'event': return this.#emit('auditevent', msg.event ?? {});
      case 'message': return this.#emit('message', {messageId: msg.message_id, text: msg.text ?? '', from: msg.from ?? ''});
      case 'ended': return this.#emit('ended', {reason: msg.reason ?? '', from: msg.from ?? ''});
      case 'talkback': return this.#onTalkback(msg);
      case 'device_link': return this.#onReply(msg, {device: msg.device, url: msg.url, qr: msg.qr, expires: msg.expires});
      case 'pong': return this.#onPong(msg);
      case 'leave': return this.#onLeave(msg);
      case 'error': return this.#onError(msg);
      default:
        this.#log.debug(`[invigil] ignoring unknown message type ${msg.type}`);
    }
  }

  #onJoined(msg) {
    this.room = msg.room ?? null;
    this.self = msg.participant ?? null;
    this.iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
    this.serverVersion = msg.server_version ?? null;
    this.require = Array.isArray(msg.require) ? msg.require.slice() : [];
    this.#createPeerConnection();
    for (const info of msg.participants ?? []) this.#upsertParticipant(info);
    this.state = 'joined';
    this.#pingTimer = setInterval(() => this.#send({type: 'ping', ts: Date.now()}), this.#options.pingInterval);
    this.#log.info(`[invigil] joined room ${this.room} as ${this.self?.identity} (${this.self?.role})`);
    const waiter = this.#joinWaiter;
    this.#joinWaiter = null;
    this.#emit('joined', msg);
    waiter?.resolve(msg);
  }

  #onReply(msg, value) {
    const req = this.#requests.get(msg.ref);
    if (!req) return;
    this.#requests.delete(msg.ref);
    req.resolve(value);
  }

  #onPong(msg) {
    if (typeof msg.ts !== 'number') return;
    this.rtt = Date.now() - msg.ts;
    this.#emit('pong', {rtt: this.rtt});
  }

  #onLeave(msg) {
    this.#leaveReason = msg.reason ?? 'unknown';
    this.#log.info(`[invigil] server ended the session: ${this.#leaveReason}`);
    this.#emit('leave', {reason: this.#leaveReason});
  }

  #onError(msg) {
    const code = msg.code ?? 'internal';
    const err = new InvigilError(code, msg.message, {fatal: FATAL_ERROR_CODES.has(code), ref: msg.ref});
    if (code === 'glare') {
      this.#onGlare(msg.ref);
      return;
    }
    const req = this.#requests.get(msg.ref);
    if (req) {
      this.#requests.delete(msg.ref);
      req.reject(err);
      if (!err.fatal) return;
    }
    if (code === 'redirect' && this.#joinWaiter && typeof msg.url === 'string' && this.#redirects < MAX_REDIRECTS) {
      // Another node holds the room: join there once this socket closes.
      this.#redirectTo = msg.url;
      this.#log.info(`[invigil] room is on ${msg.url}; following`);
      return;
    }
    if (err.fatal) this.#lastError = err;
    if (this.#joinWaiter) {
      this.#log.warn(`[invigil] join failed: ${code}: ${err.message}`);
      if (err.fatal) this.#rejectJoin(err);
      return;
    }
    this.#log.warn(`[invigil] server error ${code}: ${err.message}`);
    this.#emit('error', err);
  }

  #onSocketClose(ev, ws) {
    if (ws !== this.#ws) return; // a socket already replaced by a redirect
    this.#log.info(`[invigil] socket closed (${ev.code} ${ev.reason})`);
    if (this.#redirectTo && this.#joinWaiter && this.state !== 'closed') {
      const to = InvigilClient.signalingURLFor(this.#redirectTo);
      this.#redirectTo = null;
      this.#redirects++;
      this.#log.info(`[invigil] joining through ${to}`);
      this.#openSocket(to);
      return;
    }
    const pendingJoin = this.#joinWaiter !== null;
    this.#rejectJoin(this.#lastError ?? new InvigilError('connection_failed',
      `the signaling connection closed before joining (${ev.code})`, {fatal: true}));
    const wasJoined = this.state === 'joined';
    this.#teardown();
    if (wasJoined && !pendingJoin && !this.#leaving && !this.#leaveReason && !this.#lastError) {
      this.#emit('error', new InvigilError('connection_lost', `the signaling connection closed (${ev.code})`, {fatal: true}));
    }
    const initiator = this.#leaving ? 'client' : 'server';
    this.#dispatchClosed({code: ev.code, reason: ev.reason, wasClean: ev.wasClean, initiator});
  }

  // ---- network recovery: ICE restart ------------------------------------------
  // Kept apart from negotiation and from the socket and rejoin code: when
  // the network changes (Wi-Fi hand-over, VPN, cable) or ICE fails, a
  // publisher restarts ICE; the offer that follows carries new credentials
  // over the same signaling connection, so the participant stays the same.

  #networkListener = null;

  #watchNetwork() {
    if (this.#networkListener || typeof window === 'undefined') return;
    this.#networkListener = () => this.#restartIce('network changed');
    window.addEventListener('online', this.#networkListener);
    navigator.connection?.addEventListener?.('change', this.#networkListener);
  }

  #unwatchNetwork() {
    if (!this.#networkListener) return;
    window.removeEventListener('online', this.#networkListener);
    navigator.connection?.removeEventListener?.('change', this.#networkListener);
    this.#networkListener = null;
  }

  #restartIce(why) {
    const pc = this.pc;
    // Only an offerer can restart: a client that publishes nothing relies on
    // the server's side and, failing that, on rejoining (which resumes it).
    if (!pc || this.state !== 'joined' || this.#senders.size === 0 || pc.connectionState === 'closed') return;
    this.#log.info(`[invigil] restarting ICE: ${why}`);
    pc.restartIce();
  }

  // ---- negotiation (polite peer) -------------------------------------------

  #createPeerConnection() {
    const extra = this.#options.rtcConfiguration;
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      ...extra,
      iceServers: [...this.iceServers, ...(extra.iceServers ?? [])],
    });
    pc.addEventListener('negotiationneeded', () => this.#negotiate());
    pc.addEventListener('icecandidate', ({candidate}) => {
      if (candidate && candidate.candidate) this.#send({type: 'candidate', candidate: candidate.toJSON()});
    });
    pc.addEventListener('track', (ev) => this.#onTrack(ev));
    pc.addEventListener('connectionstatechange', () => {
      this.#log.info(`[invigil] connection ${pc.connectionState}`);
      this.#emit('connectionstatechange', {state: pc.connectionState});
      if (pc.connectionState === 'failed') this.#restartIce('connection failed');
    });
    this.pc = pc;
    this.#watchNetwork();
  }

  async #negotiate() {
    const pc = this.pc;
    if (!pc || this.state === 'closed') return;
    try {
      this.#makingOffer = true;
      await pc.setLocalDescription();
      // A server offer may have rolled ours back meanwhile; send only what we hold.
      if (pc.signalingState !== 'have-local-offer') return;
      const id = `offer-${++this.#seq}`;
      this.#pendingOfferID = id;
      this.#send({type: 'offer', id, sdp: pc.localDescription.sdp, tracks: this.#trackList()});
      this.#log.debug(`[invigil] sent ${id}`);
    } catch (err) {
      this.#emit('error', new InvigilError('negotiation_failed', `creating an offer failed: ${err.message}`, {cause: err}));
    } finally {
      this.#makingOffer = false;
    }
  }

  // #addSender sends track on a new sendonly transceiver; negotiationneeded follows.
  #addSender(track, stream, source) {
    const init = {direction: 'sendonly', streams: [stream]};
    if (source === 'camera') init.sendEncodings = cameraEncodings(track);
    if (source === 'screen') init.sendEncodings = [{maxBitrate: SCREEN.maxBitrate, maxFramerate: SCREEN.maxFrameRate}];
    const transceiver = this.pc.addTransceiver(track, init);
    if (source === 'camera') {
      try {
        preferVP8(transceiver);
      } catch (err) {
        this.#log.warn(`[invigil] cannot prefer VP8: ${err.message}`);
      }
    }
    this.#senders.set(transceiver, {source, stream});
    return transceiver;
  }

  // #onLayers pauses the simulcast encodings nobody watches and resumes the
  // ones someone does (`layers`, docs/protocol.md). The lowest (first) stays
  // active whatever the message says, so a proctor always has a picture.
  async #onLayers(msg) {
    const t = this.pc?.getTransceivers().find((x) => x.mid === msg.mid && this.#senders.has(x));
    const params = t?.sender.getParameters();
    if (!Array.isArray(msg.active) || !params?.encodings?.some((e) => e.rid)) {
      this.#log.debug(`[invigil] ignoring layers for mid ${msg.mid}: no active list or no simulcast sender`);
      return;
    }
    const want = new Set(msg.active);
    let changed = false;
    params.encodings.forEach((e, i) => {
      const on = i === 0 || want.has(e.rid);
      changed ||= e.active !== on;
      e.active = on;
    });
    let error = null;
    try {
      if (changed) await t.sender.setParameters(params);
    } catch (err) {
      error = new InvigilError('layers_failed', `pausing/resuming layers failed: ${err.message}`, {cause: err});
      this.#log.warn(`[invigil] ${error.message}`);
    }
    const active = t.sender.getParameters().encodings.filter((e) => e.active).map((e) => e.rid);
    const detail = {mid: msg.mid, trackId: msg.track_id ?? null, source: this.#senders.get(t).source,
      active, requested: msg.active.slice(), error};
    this.layers.set(msg.mid, detail);
    this.#log.info(`[invigil] layers of mid ${msg.mid}: sending ${active.join(',')}`);
    this.#emit('layers', detail);
  }

  #trackList() {
    const tracks = [];
    for (const t of this.pc.getTransceivers()) {
      const sender = this.#senders.get(t);
      if (sender && t.mid !== null && t.sender.track && t.currentDirection !== 'stopped') {
        tracks.push({mid: t.mid, source: sender.source});
      }
    }
    return tracks;
  }

  async #onDescription(msg) {
    const pc = this.pc;
    if (!pc || typeof msg.sdp !== 'string') return;
    const type = msg.type;
    if (type === 'answer' && pc.signalingState !== 'have-local-offer') {
      this.#log.debug(`[invigil] ignoring an answer in state ${pc.signalingState}`);
      return;
    }
    const readyForOffer = !this.#makingOffer && (pc.signalingState === 'stable' || this.#settingRemoteAnswer);
    const collision = type === 'offer' && !readyForOffer;
    this.#log.debug(`[invigil] received ${type} in state ${pc.signalingState}`);
    if (collision) this.#log.debug('[invigil] offer collision: rolling back ours (polite peer)');
    try {
      this.#settingRemoteAnswer = type === 'answer';
      // setRemoteDescription(offer) in have-local-offer rolls back implicitly.
      await pc.setRemoteDescription({type, sdp: msg.sdp});
      this.#settingRemoteAnswer = false;
      if (type === 'answer' || collision) this.#pendingOfferID = null;
      await this.#flushCandidates();
      if (type === 'offer') {
        await pc.setLocalDescription();
        this.#send({type: 'answer', sdp: pc.localDescription.sdp});
        this.#log.debug('[invigil] sent answer');
      }
    } catch (err) {
      this.#settingRemoteAnswer = false;
      this.#emit('error', new InvigilError('negotiation_failed', `applying the server's ${type} failed: ${err.message}`, {cause: err}));
    }
  }

  // #onGlare handles the server ignoring our offer because its own crossed it.
  // Usually its offer already rolled ours back; if ours is still pending, roll
  // back explicitly; negotiationneeded re-offers once stable.
  async #onGlare(ref) {
    const pc = this.pc;
    this.#log.debug(`[invigil] server reported glare for ${ref}`);
    if (!pc || ref !== this.#pendingOfferID || pc.signalingState !== 'have-local-offer') return;
    this.#pendingOfferID = null;
    try {
      await pc.setLocalDescription({type: 'rollback'});
    } catch (err) {
      this.#log.warn('[invigil] rollback after glare failed', err);
    }
  }

  async #onCandidate(msg) {
    const candidate = msg.candidate;
    if (!candidate || !candidate.candidate) return; // end of candidates
    if (!this.pc || !this.pc.remoteDescription) {
      if (this.#heldCandidates.length < MAX_HELD_CANDIDATES) this.#heldCandidates.push(candidate);
      else this.#log.warn('[invigil] dropping a remote candidate: too many held');
      return;
    }
    await this.#addCandidate(candidate);
  }

  async #flushCandidates() {
    for (const c of this.#heldCandidates.splice(0)) await this.#addCandidate(c);
  }

  async #addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (err) {
      this.#log.warn(`[invigil] remote candidate rejected: ${err.message}`);
    }
  }

  // ---- room state --------------------------------------------------------

  // #onTalkback: a proctor started or stopped talking to this student. Its
  // audio track may have arrived before this message (held as a track of
  // an unknown publisher) or may come after it.
  #onTalkback(msg) {
    const id = msg.stream_id;
    if (typeof id !== 'string' || !id) return;
    const entry = this.#talkbacks.get(id) ?? {from: '', talking: false, stream: null};
    entry.from = msg.from ?? '';
    entry.talking = msg.talking === true;
    const held = this.#heldTracks.get(id);
    if (held) {
      this.#heldTracks.delete(id);
      entry.stream = held[0].streams[0] ?? entry.stream;
    }
    this.#talkbacks.set(id, entry);
    this.#log.info(`[invigil] ${entry.from || 'a proctor'} ${entry.talking ? 'is talking to you' : 'stopped talking'}`);
    this.#emit('talkback', {talking: entry.talking, from: entry.from, streamId: id, stream: entry.stream});
  }

  #onTrack(ev) {
    const stream = ev.streams[0] ?? null;
    const talk = stream ? this.#talkbacks.get(stream.id) : undefined;
    if (talk) {
      talk.stream = stream;
      if (talk.talking) this.#emit('talkback', {talking: true, from: talk.from, streamId: stream.id, stream});
      return;
    }
    const participant = stream ? this.participantBySid(stream.id) : undefined;
    if (stream && !participant) {
      // ontrack may come before the announcement naming its publisher.
      const held = this.#heldTracks.get(stream.id) ?? [];
      if (held.length < MAX_HELD_TRACKS) held.push(ev);
      this.#heldTracks.set(stream.id, held);
      this.#log.debug(`[invigil] holding track ${ev.track.id} until ${stream.id} is announced`);
      return;
    }
    this.#attachTrack(participant ?? null, ev);
  }

  #attachTrack(participant, ev) {
    const {track, transceiver} = ev;
    const stream = ev.streams[0] ?? null;
    if (participant) {
      participant.mediaTracks.set(track.id, track);
      participant.stream = stream;
      track.addEventListener('ended', () => {
        if (participant.mediaTracks.get(track.id) === track) participant.mediaTracks.delete(track.id);
      });
    }
    this.#log.debug(`[invigil] ${track.kind} track ${track.id} from ${participant?.identity ?? 'unknown'}`);
    this.#emit('track', {
      track, stream, transceiver, participant,
      identity: participant?.identity ?? null,
      sid: stream?.id ?? null,
    });
  }

  #releaseHeldTracks(participant) {
    const held = this.#heldTracks.get(participant.sid);
    if (!held) return;
    this.#heldTracks.delete(participant.sid);
    for (const ev of held) this.#attachTrack(participant, ev);
  }

  #upsertParticipant(info) {
    if (!info || !info.identity) return null;
    const key = participantKey(info);
    let p = this.participants.get(key);
    if (!p || (info.sid && p.sid !== info.sid)) {
      p = {sid: info.sid, identity: info.identity, device: info.device ?? '', name: info.identity, role: null,
        tracks: [], mediaTracks: new Map(), stream: null};
      this.participants.set(key, p);
    }
    if (info.name) p.name = info.name;
    if (info.role) p.role = info.role;
    if (Array.isArray(info.tracks)) p.tracks = info.tracks.slice();
    this.#releaseHeldTracks(p);
    return p;
  }

  #onParticipantJoined(msg) {
    const p = this.#upsertParticipant(msg.participant);
    if (!p) return;
    this.#log.info(`[invigil] participant joined: ${p.identity} (${p.role}, ${p.sid})`);
    this.#emit('participant_joined', {participant: p});
  }

  #onParticipantLeft(msg) {
    const info = msg.participant;
    if (!info || !info.identity) return;
    const key = participantKey(info);
    const current = this.participants.get(key);
    this.#heldTracks.delete(info.sid);
    if (current && info.sid && current.sid !== info.sid) {
      // A stale departure of a session this identity has since replaced.
      this.#log.debug(`[invigil] ignoring departure of old session ${info.sid} of ${info.identity}`);
      return;
    }
    this.participants.delete(key);
    this.#log.info(`[invigil] participant left: ${info.identity} (${info.sid}, ${msg.reason ?? 'left'})`);
    this.#emit('participant_left', {participant: current ?? info, reason: msg.reason ?? 'left'});
  }

  #onTrackPublished(msg) {
    const track = msg.track;
    if (!track) return;
    let p = (msg.participant_sid && this.participantBySid(msg.participant_sid)) || this.participants.get(msg.identity);
    if (!p) p = this.#upsertParticipant({sid: msg.participant_sid, identity: msg.identity});
    if (!p) return;
    p.tracks = p.tracks.filter((t) => t.track_id !== track.track_id).concat(track);
    this.#releaseHeldTracks(p);
    this.#emit('track_published', {participant: p, track});
  }

  #onTrackUnpublished(msg) {
    const track = msg.track;
    if (!track) return;
    const p = (msg.participant_sid && this.participantBySid(msg.participant_sid)) || this.participants.get(msg.identity);
    if (p) {
      p.tracks = p.tracks.filter((t) => t.track_id !== track.track_id);
      p.mediaTracks.delete(track.track_id);
    }
    this.#emit('track_unpublished', {participant: p ?? null, track});
  }

  // ---- lifecycle ---------------------------------------------------------

  async #whenJoined() {
    if (this.state === 'joined') return;
    if (this.state === 'connecting') {
      await this.#connecting;
      return;
    }
    throw new InvigilError(this.state === 'closed' ? 'closed' : 'not_connected', 'call connect() first');
  }

  #rejectJoin(err) {
    const waiter = this.#joinWaiter;
    this.#joinWaiter = null;
    waiter?.reject(err);
  }

  #teardown() {
    this.state = 'closed';
    this.#unwatchNetwork();
    clearInterval(this.#pingTimer);
    this.#pingTimer = null;
    this.#heldCandidates = [];
    this.#heldTracks.clear();
    this.#talkbacks.clear();
    for (const req of this.#requests.values()) req.reject(new InvigilError('closed', 'the session closed'));
    this.#requests.clear();
    if (this.pc && this.pc.signalingState !== 'closed') this.pc.close();
    if (this.#ownsLocalStream && this.localStream) this.localStream.getTracks().forEach((t) => t.stop());
    this.screenStream?.getTracks().forEach((t) => t.stop());
  }

  #dispatchClosed(detail) {
    if (this.#closedDispatched) return;
    this.#closedDispatched = true;
    this.#emit('closed', {...detail, leaveReason: this.#leaveReason, error: this.#lastError});
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, {detail}));
  }
}

function mediaError(err) {
  const codes = {
    NotAllowedError: 'media_denied',
    SecurityError: 'media_denied',
    NotFoundError: 'media_not_found',
    OverconstrainedError: 'media_not_found',
    NotReadableError: 'media_unavailable',
    AbortError: 'media_unavailable',
  };
  return new InvigilError(codes[err?.name] ?? 'media_failed', err?.message || String(err), {cause: err});
}
