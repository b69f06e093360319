// Type declarations for Invigil's browser SDK, /sdk/invigil.js (served
// beside it as /sdk/invigil.d.ts). docs/sdk.md documents every name here.
//
// Use them from TypeScript by mapping the module's URL to a copy of this
// file, e.g. in tsconfig.json:
//   "paths": {"https://invigil.example.com/sdk/invigil.js": ["./types/invigil.d.ts"]}
//
// Casing: every key of an object the SDK hands out is camelCase. Values
// are not renamed: codes, kinds, reasons and sources are the protocol's
// snake_case strings, and AuditEvent.details is the trail's own record.

// ---- constants ----------------------------------------------------------------

/** The protocol version (`v`) this SDK speaks. */
export declare const PROTOCOL_VERSION: 1;

/** How often the client sends `ping`, in ms. */
export declare const PING_INTERVAL_MS: 10000;

/** Server error codes after which the server closes the socket. */
export declare const FATAL_ERROR_CODES: ReadonlySet<string>;

/** Codes after which a lost or refused session is worth joining again (see rejoinAfter). */
export declare const RETRYABLE_CODES: ReadonlySet<string>;

/** How the camera is captured; maxBitrate is the 640×360 layer's. */
export declare const CAMERA: Readonly<{width: 640; height: 360; maxFrameRate: 30; maxBitrate: 500000}>;

/** How a screen share is sent: one layer, ≤ 5 fps, ≤ 1 Mb/s, up to 1920×1080. */
export declare const SCREEN: Readonly<{maxFrameRate: 5; maxBitrate: 1000000; maxWidth: 1920; maxHeight: 1080}>;

/** One simulcast encoding of the camera. */
export interface SimulcastLayer {
  readonly rid: 'q' | 'h' | 'f';
  readonly maxBitrate: number;
}

/** The camera's simulcast layers, lowest first: q, h and (from 1280×720) f. */
export declare const SIMULCAST_LAYERS: readonly [SimulcastLayer, SimulcastLayer, SimulcastLayer];

// ---- events -------------------------------------------------------------------

/** The name of every event an InvigilClient dispatches. */
export declare const ClientEvent: Readonly<{
  Joined: 'joined';
  ParticipantJoined: 'participantjoined';
  ParticipantLeft: 'participantleft';
  TrackPublished: 'trackpublished';
  TrackUnpublished: 'trackunpublished';
  Track: 'track';
  ConnectionStateChange: 'connectionstatechange';
  Error: 'error';
  Pong: 'pong';
  Message: 'message';
  Talkback: 'talkback';
  ScreenEnded: 'screenended';
  Ended: 'ended';
  AuditEvent: 'auditevent';
  Layers: 'layers';
  Leave: 'leave';
  Closed: 'closed';
}>;

/** An event name, e.g. 'participantjoined'. */
export type ClientEventName = (typeof ClientEvent)[keyof typeof ClientEvent];

/**
 * Old event names → their ClientEvent names. An old name keeps working
 * (with a console warning once per page) until 0.2.0, which removes it.
 */
export declare const DEPRECATED_EVENTS: Readonly<{
  participant_joined: 'participantjoined';
  participant_left: 'participantleft';
  track_published: 'trackpublished';
  track_unpublished: 'trackunpublished';
}>;

/** A deprecated event name. */
export type DeprecatedEventName = keyof typeof DEPRECATED_EVENTS;

// ---- the room's objects -----------------------------------------------------

export type Role = 'student' | 'proctor' | 'admin' | 'reviewer';

/** What a participant sends: camera, microphone, screen, or a proctor's talkback. */
export type TrackSource = 'camera' | 'microphone' | 'screen' | 'talkback';

/** A published track, as the server announces it. */
export interface TrackInfo {
  /** Equals the remote MediaStreamTrack's id. */
  trackId: string;
  /** Equals the remote MediaStream's id: the publisher's sid. */
  streamId: string;
  kind: 'audio' | 'video';
  source: TrackSource;
  /** @deprecated use trackId; removed in 0.2.0. */
  readonly track_id: string;
  /** @deprecated use streamId; removed in 0.2.0. */
  readonly stream_id: string;
}

/** This participant as the server described it in `joined`. */
export interface ParticipantInfo {
  sid: string;
  identity: string;
  name: string;
  role: Role | null;
  /** '' for the main device; e.g. 'phone' for a second camera. */
  device: string;
}

/** A participant this role may see (a proctor: every student). */
export interface Participant extends ParticipantInfo {
  /** What it publishes, from the server's announcements. */
  tracks: TrackInfo[];
  /** Remote track id → the MediaStreamTrack received so far. */
  mediaTracks: Map<string, MediaStreamTrack>;
  /** The remote stream its tracks arrive on. */
  stream: MediaStream | null;
}

/** One entry of the room's audit trail, as the events HTTP API returns it. */
export interface AuditEvent {
  seq: number;
  /** RFC 3339. */
  time: string;
  /** snake_case: join, leave, violation, media_stalled, flag, message_ack, … */
  kind: string;
  actor?: string;
  subject?: string;
  node?: string;
  /** Free-form per kind, with the trail's own (snake_case) keys. */
  details?: Record<string, unknown>;
}

/** A student tile a proctor sees, for setView(). */
export interface ViewTile {
  identity: string;
  /** CSS px; from 270 the tile gets the high layer. */
  height: number;
}

/** The link requestDeviceLink() resolves with. */
export interface DeviceLink {
  device: string;
  /** Opens the student page on the phone. */
  url: string;
  /** A PNG data: URL of url, to show for scanning. */
  qr: string;
  /** Unix seconds. */
  expires: number;
}

// ---- event details ------------------------------------------------------------

export interface JoinedDetail {
  room: string | null;
  participant: ParticipantInfo | null;
  /** The participants listed at joining; client.participants holds them already. */
  participants: Participant[];
  iceServers: RTCIceServer[];
  serverVersion: string | null;
  /** (students) What must be published to be admitted, e.g. ['camera', 'screen']. */
  require: string[];
  /** @deprecated use iceServers; removed in 0.2.0. */
  readonly ice_servers: RTCIceServer[];
  /** @deprecated use serverVersion; removed in 0.2.0. */
  readonly server_version: string | null;
}

export interface ParticipantJoinedDetail {
  participant: Participant;
}

export interface ParticipantLeftDetail {
  participant: Participant;
  /** left, disconnected, replaced, server_shutdown or ended_by_proctor. */
  reason: string;
}

export interface TrackPublishedDetail {
  participant: Participant;
  track: TrackInfo;
}

export interface TrackUnpublishedDetail {
  participant: Participant | null;
  track: TrackInfo;
}

export interface TrackDetail {
  track: MediaStreamTrack;
  stream: MediaStream | null;
  transceiver: RTCRtpTransceiver;
  participant: Participant | null;
  identity: string | null;
  sid: string | null;
}

export interface ConnectionStateChangeDetail {
  state: RTCPeerConnectionState;
}

export interface PongDetail {
  rtt: number;
}

export interface MessageDetail {
  messageId: number;
  text: string;
  from: string;
}

export interface TalkbackDetail {
  talking: boolean;
  /** The proctor's display name. */
  from: string;
  streamId: string;
  /** The proctor's audio; null until its track arrives (a second event follows). */
  stream: MediaStream | null;
}

export type ScreenEndedDetail = Record<string, never>;

export interface EndedDetail {
  reason: string;
  from: string;
}

export interface LayersDetail {
  mid: string;
  trackId: string | null;
  source: TrackSource;
  /** The RIDs sent now; the lowest always stays on. */
  active: string[];
  /** The RIDs the server asked for. */
  requested: string[];
  error: InvigilError | null;
}

export interface LeaveDetail {
  /** server_shutdown, replaced or ended_by_proctor. */
  reason: string;
}

export interface ClosedDetail {
  /** The WebSocket close code and reason. */
  code: number;
  reason: string;
  wasClean: boolean;
  initiator: 'client' | 'server';
  /** The server's `leave` reason, if any. */
  leaveReason: string | null;
  /** The last fatal error, if any. */
  error: InvigilError | null;
}

/** Each event's detail, by name. */
export interface InvigilClientEventMap {
  joined: JoinedDetail;
  participantjoined: ParticipantJoinedDetail;
  participantleft: ParticipantLeftDetail;
  trackpublished: TrackPublishedDetail;
  trackunpublished: TrackUnpublishedDetail;
  track: TrackDetail;
  connectionstatechange: ConnectionStateChangeDetail;
  error: InvigilError;
  pong: PongDetail;
  message: MessageDetail;
  talkback: TalkbackDetail;
  screenended: ScreenEndedDetail;
  ended: EndedDetail;
  auditevent: AuditEvent;
  layers: LayersDetail;
  leave: LeaveDetail;
  closed: ClosedDetail;
}

/** The deprecated names' details (the same as their new names'). */
export interface DeprecatedInvigilClientEventMap {
  /** @deprecated use 'participantjoined' (ClientEvent.ParticipantJoined); removed in 0.2.0. */
  participant_joined: ParticipantJoinedDetail;
  /** @deprecated use 'participantleft' (ClientEvent.ParticipantLeft); removed in 0.2.0. */
  participant_left: ParticipantLeftDetail;
  /** @deprecated use 'trackpublished' (ClientEvent.TrackPublished); removed in 0.2.0. */
  track_published: TrackPublishedDetail;
  /** @deprecated use 'trackunpublished' (ClientEvent.TrackUnpublished); removed in 0.2.0. */
  track_unpublished: TrackUnpublishedDetail;
}

/** A listener of one event. */
export type InvigilEventListener<K extends keyof (InvigilClientEventMap & DeprecatedInvigilClientEventMap)> =
  (this: InvigilClient, ev: CustomEvent<(InvigilClientEventMap & DeprecatedInvigilClientEventMap)[K]>) => void;

// ---- errors -------------------------------------------------------------------

/** What the SDK rejects with and what `error` events carry. */
export declare class InvigilError extends Error {
  constructor(code: string, message?: string, options?: {fatal?: boolean; ref?: string; cause?: unknown});
  readonly name: 'InvigilError';
  /**
   * A server code from docs/protocol.md, or the SDK's own: connection_failed,
   * connection_lost, not_connected, closed, negotiation_failed, layers_failed,
   * media_denied, media_not_found, media_unavailable, media_failed.
   */
  code: string;
  /** The session ends after a fatal error. */
  fatal: boolean;
  /** The request id the server named, if any. */
  ref: string | undefined;
}

// ---- the client ---------------------------------------------------------------

/** A logger: pass console for everything. */
export interface Logger {
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

export interface InvigilClientOptions {
  /** The join token (required). */
  token: string;
  /** The signaling WebSocket URL; default defaultSignalingURL(). */
  url?: string;
  /** Sent in `join`; must equal the token's room. */
  room?: string;
  /** ms between pings; default PING_INTERVAL_MS. */
  pingInterval?: number;
  /** Merged into the PeerConnection's configuration; its iceServers come after the server's. */
  rtcConfiguration?: RTCConfiguration;
  /** Default: warnings and errors to the console. */
  logger?: Logger;
}

/** What openCamera() and publishCamera() capture: true, false or extra constraints. */
export interface CameraOptions {
  video?: boolean | MediaTrackConstraints;
  audio?: boolean | MediaTrackConstraints;
}

export type ClientState = 'new' | 'connecting' | 'joined' | 'closed';

/** One participant's session: a signaling WebSocket and one RTCPeerConnection. */
export declare class InvigilClient extends EventTarget {
  constructor(options: InvigilClientOptions);

  /** The signaling URL of a node's base URL (a `redirect`'s url). */
  static signalingURLFor(base: string | URL): string;

  readonly state: ClientState;
  readonly url: string;
  /** Created when the server answers `joined`. */
  readonly peerConnection: RTCPeerConnection | null;
  /** @deprecated use peerConnection; removed in 0.2.0. */
  readonly pc: RTCPeerConnection | null;
  /** participantKey → participant this role may see. */
  readonly participants: ReadonlyMap<string, Participant>;
  readonly self: ParticipantInfo | null;
  /** The room's name. */
  readonly room: string | null;
  readonly iceServers: RTCIceServer[];
  readonly serverVersion: string | null;
  readonly require: string[];
  /** The last signaling round-trip time in ms. */
  readonly rtt: number | null;
  readonly localStream: MediaStream | null;
  readonly screenStream: MediaStream | null;
  /** mid → the last `layers` detail of that published m-line. */
  readonly layers: ReadonlyMap<string, LayersDetail>;

  /** The PeerConnection's statistics; an empty report (a Map) before `joined` and after closing. */
  getStats(selector?: MediaStreamTrack | null): Promise<RTCStatsReport>;

  connect(): Promise<JoinedDetail>;
  leave(): Promise<void>;
  close(): void;
  participantBySid(sid: string): Participant | undefined;

  // Students.
  openCamera(options?: CameraOptions): Promise<MediaStream>;
  publishCamera(options?: CameraOptions): Promise<MediaStream>;
  publishScreen(): Promise<MediaStream>;
  reportViolation(kind: string, details?: Record<string, unknown>): boolean;
  acknowledge(messageId: number): boolean;
  requestDeviceLink(): Promise<DeviceLink>;

  // Proctors.
  focus(identity: string | null): boolean;
  setView(tiles: Iterable<ViewTile> | null): boolean;
  sendMessage(identity: string, text: string): boolean;
  flag(identity: string, text?: string): boolean;
  note(identity: string, text: string): boolean;
  end(identity: string, reason?: string): boolean;
  startTalkback(identity: string): Promise<void>;
  stopTalkback(): boolean;

  addEventListener<K extends keyof InvigilClientEventMap>(type: K, listener: InvigilEventListener<K>, options?: boolean | AddEventListenerOptions): void;
  /** @deprecated a deprecated event name; see DEPRECATED_EVENTS. */
  addEventListener<K extends keyof DeprecatedInvigilClientEventMap>(type: K, listener: InvigilEventListener<K>, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof InvigilClientEventMap>(type: K, listener: InvigilEventListener<K>, options?: boolean | EventListenerOptions): void;
  removeEventListener<K extends keyof DeprecatedInvigilClientEventMap>(type: K, listener: InvigilEventListener<K>, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

// ---- functions ----------------------------------------------------------------

/** The `token` parameter of the URL fragment (#token=…), or null. */
export declare function tokenFromLocation(location?: {hash: string} | null): string | null;

/** The token's claims, decoded WITHOUT verification; null for a malformed token. */
export declare function tokenClaims(token: string): TokenClaims | null;

export interface TokenClaims {
  sub?: string;
  room?: string;
  role?: Role;
  name?: string;
  exp?: number;
  nbf?: number;
  iat?: number;
  require?: string[];
  record?: boolean;
  device?: string;
  [claim: string]: unknown;
}

/** The key of client.participants: identity, or identity/device for an additional device. */
export declare function participantKey(info: {identity: string; device?: string}): string;

/** The ws(s) URL of /v1/rtc next to base (default: the module's own URL). */
export declare function defaultSignalingURL(base?: string | URL): string;

/** rejoinAfter's tuning; the defaults are the documented policy. */
export interface RejoinOptions {
  /** ms; default 500. */
  base?: number;
  /** ms; default 15000. */
  cap?: number;
  /** default 12. */
  attempts?: number;
}

/** ms to wait before joining again after a `closed` event, or -1 not to. */
export declare function rejoinAfter(detail: ClosedDetail | null | undefined, attempt: number, options?: RejoinOptions): number;

/** Reports the page's own signals through client.reportViolation; returns a function that stops. */
export declare function watchViolations(client: InvigilClient, doc?: Document, win?: Window): () => void;
