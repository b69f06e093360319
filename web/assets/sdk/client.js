// client.js: InvigilClient, the one object a page holds. It owns the
// session's lifecycle and state, routes each server message to the part
// that handles it (signal.js, negotiation.js, publish.js, room.js) and
// dispatches the events they produce. The parts talk to it through small
// host objects; the page talks to it only through what docs/sdk.md and
// invigil.d.ts describe.

import {InvigilError} from './errors.js';
import {ClientEvent, deprecatedAlias, warnDeprecated, warnDeprecatedEvent, withDeprecatedKeys} from './events.js';
import {Negotiator} from './negotiation.js';
import {Publisher} from './publish.js';
import {RoomView} from './room.js';
import {PING_INTERVAL_MS, SignalClient, defaultSignalingURL, signalingURLFor} from './signal.js';
import {violationMessage} from './violations.js';

// quietLogger is the default logger: warnings and errors to the console
// (looked up at each call, so a page that wraps console sees them).
const quietLogger = Object.freeze({
  debug() {},
  info() {},
  warn: (...args) => console.warn(...args),
  error: (...args) => console.error(...args),
});

/**
 * InvigilClient is one participant's session: a signaling WebSocket plus one
 * RTCPeerConnection. It is an EventTarget; every event is a CustomEvent named
 * by ClientEvent whose `detail` is documented in docs/sdk.md.
 */
export class InvigilClient extends EventTarget {
  #log;
  #state = 'new';
  #signal;
  #negotiation;
  #publisher;
  #room;
  #connecting = null;
  #joined = null; // the `joined` event's detail
  #closedDispatched = false;

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
    const log = options.logger ?? quietLogger;
    this.#log = log;
    const emit = (type, detail) => this.#emit(type, detail);
    const send = (msg) => this.#signal.send(msg);
    const whenJoined = () => this.#whenJoined();
    this.#signal = new SignalClient({
      url: options.url ?? defaultSignalingURL(),
      token: options.token,
      room: options.room ?? null,
      pingInterval: options.pingInterval ?? PING_INTERVAL_MS,
    }, {log, emit, onMessage: (msg) => this.#route(msg), onClose: (detail, lost) => this.#onClose(detail, lost)});
    const negotiation = new Negotiator({
      log, emit, send,
      trackList: () => this.#publisher.trackList(),
      canRestartIce: () => this.#state === 'joined' && this.#publisher.sending,
      onTrack: (ev) => this.#room.onTrack(ev),
    }, options.rtcConfiguration ?? {});
    this.#negotiation = negotiation;
    this.#publisher = new Publisher({
      log, emit, whenJoined,
      get pc() { return negotiation.pc; },
      closed: () => this.#state === 'closed',
    });
    this.#room = new RoomView({
      log, emit, send, whenJoined,
      request: (msg) => this.#signal.request(msg),
      talkbackMicrophone: () => this.#publisher.talkbackMicrophone(),
      talkbackTrack: () => this.#publisher.talkbackTrack,
    });
  }

  // ---- state ---------------------------------------------------------------

  /** state is 'new', 'connecting', 'joined' or 'closed'. */
  get state() { return this.#state; }
  /** url is the signaling URL this client connects to. */
  get url() { return this.#signal.url; }
  /** peerConnection is the RTCPeerConnection, created when the server answers `joined`. */
  get peerConnection() { return this.#negotiation.pc; }
  /** pc is peerConnection's old name (deprecated). */
  get pc() {
    warnDeprecated('client.pc', 'client.peerConnection', (m) => this.#log.warn(m));
    return this.#negotiation.pc;
  }
  /** participants maps participantKey → participant this role may see. */
  get participants() { return this.#room.participants; }
  /** self is this participant as the server described it in `joined`. */
  get self() { return this.#joined?.participant ?? null; }
  /** room is the room name from `joined`. */
  get room() { return this.#joined?.room ?? null; }
  /** iceServers are the ICE servers the server handed out in `joined`. */
  get iceServers() { return this.#joined?.iceServers ?? []; }
  /** serverVersion is the server's version string from `joined`. */
  get serverVersion() { return this.#joined?.serverVersion ?? null; }
  /** require lists what this student must publish to be admitted (from `joined`). */
  get require() { return this.#joined?.require ?? []; }
  /** rtt is the last signaling round-trip time in ms, or null. */
  get rtt() { return this.#signal.rtt; }
  /** localStream is the camera/microphone stream opened by openCamera(), or null. */
  get localStream() { return this.#publisher.localStream; }
  /** screenStream is the screen share publishScreen() opened, or null. */
  get screenStream() { return this.#publisher.screenStream; }
  /** layers maps a published m-line's mid → the last `layers` event detail. */
  get layers() { return this.#publisher.layers; }

  /**
   * getStats is the PeerConnection's statistics (RTCStatsReport); an empty
   * Map before `joined` and after the session closed.
   */
  async getStats(selector = null) {
    const pc = this.#negotiation.pc;
    if (!pc || pc.signalingState === 'closed') return new Map();
    return pc.getStats(selector);
  }

  /** signalingURLFor turns a node's base URL (a `redirect`'s url) into its signaling URL. */
  static signalingURLFor(base) {
    return signalingURLFor(base);
  }

  // ---- every role ----------------------------------------------------------

  /**
   * connect opens the WebSocket, sends `join` and resolves with the `joined`
   * event's detail once the server accepts. It rejects with an InvigilError
   * (for example code token_expired or room_full) when the join fails; such
   * errors are not also dispatched as `error` events. Calling it again
   * returns the same promise.
   */
  connect() {
    if (this.#connecting) return this.#connecting;
    if (this.#state === 'closed') {
      return Promise.reject(new InvigilError('closed', 'this client is closed; create a new one'));
    }
    this.#state = 'connecting';
    this.#connecting = this.#signal.join().then(() => this.#joined);
    return this.#connecting;
  }

  /**
   * leave tells the server this participant is leaving, waits briefly for the
   * server to close the socket, then closes everything. Resolves when closed.
   */
  async leave() {
    if (this.#state === 'closed') return;
    await this.#signal.leave();
    this.close();
  }

  /**
   * close ends the session at once without a `leave` (the server sees a
   * disconnect): closes the socket and the PeerConnection and stops the
   * tracks openCamera() opened. Dispatches `closed` once.
   */
  close() {
    if (this.#closedDispatched) return;
    this.#signal.close();
    this.#teardown();
    this.#dispatchClosed({code: 1000, reason: 'client closed', wasClean: true, initiator: 'client'});
  }

  /** participantBySid returns the participant with this sid, or undefined. */
  participantBySid(sid) {
    return this.#room.participantBySid(sid);
  }

  // ---- students: publishing ------------------------------------------------

  /**
   * openCamera asks for camera and/or microphone without publishing, e.g.
   * for a preflight self-view; it reuses tracks it opened before. Rejects
   * with an InvigilError (media_denied, media_not_found, media_unavailable,
   * media_failed).
   */
  openCamera(options) { return this.#publisher.openCamera(options); }

  /**
   * publishCamera opens the camera (and microphone) if needed and sends them
   * on sendonly transceivers, the camera with simulcast; negotiation follows
   * by itself. Waits for connect() if it is in progress.
   */
  publishCamera(options) { return this.#publisher.publishCamera(options); }

  /**
   * publishScreen asks the student to share their screen (call it from a
   * click) and sends it as source `screen`, one layer. Dispatches
   * `screenended` when the student stops sharing.
   */
  publishScreen() { return this.#publisher.publishScreen(); }

  /** reportViolation records what a detector saw on a student's page (kind is snake_case). */
  reportViolation(kind, details = {}) { return this.#signal.send(violationMessage(kind, details)); }

  /** acknowledge tells the proctor a `message` was seen. */
  acknowledge(messageId) { return this.#room.acknowledge(messageId); }

  /** requestDeviceLink resolves with {device, url, qr, expires}: a link that adds the student's phone. */
  requestDeviceLink() { return this.#room.requestDeviceLink(); }

  // ---- proctors: the room --------------------------------------------------

  /** focus asks for one student's high simulcast layer; '' or null returns to the grid. */
  focus(identity) { return this.#room.focus(identity); }

  /** setView lists the visible student tiles [{identity, height}]; null means all, at the low layer. */
  setView(tiles) { return this.#room.setView(tiles); }

  /** sendMessage shows text on the student's page until they acknowledge it. */
  sendMessage(identity, text) { return this.#room.intervene('message', identity, text); }

  /** flag marks this moment of a student's session in the trail. */
  flag(identity, text = '') { return this.#room.intervene('flag', identity, text); }

  /** note adds a proctor's note about a student to the trail. */
  note(identity, text) { return this.#room.intervene('note', identity, text); }

  /** end closes a student's session, with the reason shown to them. */
  end(identity, reason = '') { return this.#room.intervene('end', identity, reason); }

  /** startTalkback makes this proctor's microphone heard by one student, and by nobody else. */
  startTalkback(identity) { return this.#room.startTalkback(identity); }

  /** stopTalkback stops talking; the microphone stays published, muted. */
  stopTalkback() { return this.#room.stopTalkback(); }

  // ---- events --------------------------------------------------------------

  /**
   * addEventListener is EventTarget's; subscribing to a deprecated event
   * name (DEPRECATED_EVENTS) warns once per page, and still works.
   */
  addEventListener(type, listener, options) {
    warnDeprecatedEvent(type, (m) => this.#log.warn(m));
    super.addEventListener(type, listener, options);
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, {detail}));
    const old = deprecatedAlias(type);
    if (old) this.dispatchEvent(new CustomEvent(old, {detail}));
  }

  // ---- routing and lifecycle -----------------------------------------------

  // #route hands one server message (in order; signaling's own are handled
  // in signal.js) to the part it belongs to.
  #route(msg) {
    switch (msg.type) {
      case 'joined': return this.#onJoined(msg);
      case 'offer':
      case 'answer': return this.#negotiation.onDescription(msg);
      case 'candidate': return this.#negotiation.onCandidate(msg);
      case 'error': return this.#negotiation.onGlare(msg.ref); // only `glare` comes here
      case 'layers': return this.#publisher.onLayers(msg);
      case 'participant_joined': return this.#room.onParticipantJoined(msg);
      case 'participant_left': return this.#room.onParticipantLeft(msg);
      case 'track_published': return this.#room.onTrackPublished(msg);
      case 'track_unpublished': return this.#room.onTrackUnpublished(msg);
      case 'event': return this.#room.onAuditEvent(msg);
      case 'message': return this.#room.onMessage(msg);
      case 'ended': return this.#room.onEnded(msg);
      case 'talkback': return this.#room.onTalkback(msg);
      default:
        this.#log.debug(`[invigil] ignoring unknown message type ${msg.type}`);
    }
  }

  #onJoined(msg) {
    const p = msg.participant;
    const self = p ? {sid: p.sid ?? '', identity: p.identity ?? '', name: p.name || p.identity || '', role: p.role ?? null, device: p.device ?? ''} : null;
    const iceServers = Array.isArray(msg.ice_servers) ? msg.ice_servers : [];
    this.#negotiation.open(iceServers);
    for (const info of msg.participants ?? []) this.#room.upsert(info);
    this.#joined = withDeprecatedKeys({
      room: msg.room ?? null,
      participant: self,
      participants: [...this.#room.participants.values()],
      iceServers,
      serverVersion: msg.server_version ?? null,
      require: Array.isArray(msg.require) ? msg.require.slice() : [],
    }, {ice_servers: 'iceServers', server_version: 'serverVersion'}, (m) => this.#log.warn(m));
    this.#state = 'joined';
    this.#log.info(`[invigil] joined room ${this.room} as ${self?.identity} (${self?.role})`);
    this.#emit(ClientEvent.Joined, this.#joined);
  }

  async #whenJoined() {
    if (this.#state === 'joined') return;
    if (this.#state === 'connecting') {
      await this.#connecting;
      return;
    }
    throw new InvigilError(this.#state === 'closed' ? 'closed' : 'not_connected', 'call connect() first');
  }

  #onClose(detail, lost) {
    this.#teardown();
    if (!detail) return; // no socket was ever opened: nothing closed
    if (lost) this.#emit(ClientEvent.Error, lost);
    this.#dispatchClosed(detail);
  }

  #teardown() {
    this.#state = 'closed';
    this.#negotiation.close();
    this.#room.clear();
    this.#publisher.stop();
  }

  #dispatchClosed(detail) {
    if (this.#closedDispatched) return;
    this.#closedDispatched = true;
    this.#emit(ClientEvent.Closed, {...detail, leaveReason: this.#signal.leaveReason, error: this.#signal.lastError});
  }
}
