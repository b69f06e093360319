// sdk_consumer.ts is an exam platform's own student and proctor code,
// written against invigil.d.ts alone: types_test.go type-checks it with
// `tsc --noEmit --strict`. It uses every export, every option and every
// event, so a declaration that drifts from docs/sdk.md fails to compile;
// the @ts-expect-error lines fail if the types ever loosen to `any`.

import {
  CAMERA, ClientEvent, DEPRECATED_EVENTS, FATAL_ERROR_CODES, InvigilClient, InvigilError,
  PING_INTERVAL_MS, PROTOCOL_VERSION, RETRYABLE_CODES, SCREEN, SIMULCAST_LAYERS,
  defaultSignalingURL, participantKey, rejoinAfter, tokenClaims, tokenFromLocation, watchViolations,
} from 'https://invigil.example.com/sdk/invigil.js';
import type {
  AuditEvent, ClientEventName, ClosedDetail, DeprecatedEventName, DeviceLink, InvigilClientEventMap,
  InvigilClientOptions, InvigilEventListener, JoinedDetail, LayersDetail, Participant, TrackInfo, ViewTile,
} from 'https://invigil.example.com/sdk/invigil.js';

// Same is true exactly when A and B are the same set of names.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// ClientEvent names exactly the events the map types.
export const eventsTyped: Same<ClientEventName, keyof InvigilClientEventMap> = true;
// Every deprecated name maps to a current one.
export const aliasesCurrent: Same<(typeof DEPRECATED_EVENTS)[DeprecatedEventName] extends ClientEventName ? true : false, true> = true;

const protocol: 1 = PROTOCOL_VERSION;
const ping: number = PING_INTERVAL_MS;
const retryable: boolean = RETRYABLE_CODES.has('draining') && !FATAL_ERROR_CODES.has('glare');
const capture: string = `${CAMERA.width}×${CAMERA.height} at ${CAMERA.maxFrameRate} fps, ${CAMERA.maxBitrate} b/s`;
const screen: number = SCREEN.maxFrameRate + SCREEN.maxBitrate + SCREEN.maxWidth + SCREEN.maxHeight;
const rids: string[] = SIMULCAST_LAYERS.map((l) => `${l.rid}:${l.maxBitrate}`);
const node: string = defaultSignalingURL('https://invigil.example.com/sdk/invigil.js');
const redirected: string = InvigilClient.signalingURLFor('https://n2.invigil.example.com');
console.debug(protocol, ping, retryable, capture, screen, rids, node, redirected);

const token = tokenFromLocation(window.location) ?? tokenFromLocation({hash: '#token=x'});
if (!token) throw new Error('no token');
const device: string = tokenClaims(token)?.device ?? '';

const options: Required<InvigilClientOptions> = {
  token,
  url: node,
  room: 'exam-1',
  pingInterval: 5000,
  rtcConfiguration: {iceTransportPolicy: 'relay', iceServers: [{urls: 'turn:turn.example.com'}]},
  logger: console,
};
const client = new InvigilClient(options);
// @ts-expect-error: the token is required.
new InvigilClient({url: node});

// ---- every event, typed by name ---------------------------------------------

const show = (...what: unknown[]) => console.info('[platform]', ...what);

const on: {[K in keyof InvigilClientEventMap]: InvigilEventListener<K>} = {
  joined(ev) {
    const d: JoinedDetail = ev.detail;
    const servers: RTCIceServer[] = d.iceServers;
    show(d.room, d.participant?.identity, d.participants.length, servers, d.serverVersion, d.require.includes('screen'));
    // @ts-expect-error: details are camelCase.
    show(ev.detail.iceservers);
  },
  participantjoined(ev) {
    const p: Participant = ev.detail.participant;
    show(p.sid, p.identity, p.name, p.role, p.device, p.stream?.id, p.mediaTracks.size, participantKey(p));
  },
  participantleft(ev) {
    show(ev.detail.participant.identity, ev.detail.reason);
  },
  trackpublished(ev) {
    const t: TrackInfo = ev.detail.track;
    show(ev.detail.participant.identity, t.trackId, t.streamId, t.kind, t.source);
  },
  trackunpublished(ev) {
    show(ev.detail.participant?.identity ?? '', ev.detail.track.trackId);
  },
  track(ev) {
    const {track, stream, transceiver, participant, identity, sid} = ev.detail;
    if (track.kind === 'video' && stream) document.querySelector('video')!.srcObject = stream;
    show(transceiver.mid, participant?.tracks.length, identity, sid);
  },
  connectionstatechange(ev) {
    const state: RTCPeerConnectionState = ev.detail.state;
    show(state);
  },
  error(ev) {
    const err: InvigilError = ev.detail;
    show(err.code, err.message, err.fatal, err.ref, err instanceof InvigilError);
  },
  pong(ev) {
    show(ev.detail.rtt.toFixed(0));
  },
  message(ev) {
    show(ev.detail.text, ev.detail.from);
    client.acknowledge(ev.detail.messageId);
  },
  talkback(ev) {
    const {talking, from, streamId, stream} = ev.detail;
    if (talking && stream) document.querySelector('audio')!.srcObject = stream;
    show(from, streamId);
  },
  screenended() {
    show('share your screen again');
  },
  ended(ev) {
    show(ev.detail.reason, ev.detail.from);
  },
  auditevent(ev) {
    const e: AuditEvent = ev.detail;
    show(e.seq, e.time, e.kind, e.actor, e.subject, e.node, e.details?.['hidden_ms']);
  },
  layers(ev) {
    const l: LayersDetail = ev.detail;
    show(l.mid, l.trackId, l.source, l.active.join(','), l.requested, l.error?.code);
  },
  leave(ev) {
    show(ev.detail.reason);
  },
  closed(ev) {
    const d: ClosedDetail = ev.detail;
    show(d.code, d.reason, d.wasClean, d.initiator, d.leaveReason, d.error?.code);
    const wait = rejoinAfter(d, 0, {base: 250, cap: 10000, attempts: 5}) + rejoinAfter(d, 1);
    show(wait);
  },
};

client.addEventListener(ClientEvent.Joined, on.joined);
client.addEventListener(ClientEvent.ParticipantJoined, on.participantjoined);
client.addEventListener(ClientEvent.ParticipantLeft, on.participantleft);
client.addEventListener(ClientEvent.TrackPublished, on.trackpublished);
client.addEventListener(ClientEvent.TrackUnpublished, on.trackunpublished);
client.addEventListener(ClientEvent.Track, on.track);
client.addEventListener(ClientEvent.ConnectionStateChange, on.connectionstatechange);
client.addEventListener(ClientEvent.Error, on.error);
client.addEventListener(ClientEvent.Pong, on.pong);
client.addEventListener(ClientEvent.Message, on.message);
client.addEventListener(ClientEvent.Talkback, on.talkback);
client.addEventListener(ClientEvent.ScreenEnded, on.screenended);
client.addEventListener(ClientEvent.Ended, on.ended);
client.addEventListener(ClientEvent.AuditEvent, on.auditevent);
client.addEventListener(ClientEvent.Layers, on.layers);
client.addEventListener(ClientEvent.Leave, on.leave);
client.addEventListener(ClientEvent.Closed, on.closed, {once: true});
client.removeEventListener(ClientEvent.Pong, on.pong);

// The deprecated names still type-check, with the same details.
client.addEventListener('participant_joined', (ev) => show(ev.detail.participant.identity));
client.addEventListener('participant_left', (ev) => show(ev.detail.reason));
client.addEventListener('track_published', (ev) => show(ev.detail.track.track_id));
client.addEventListener('track_unpublished', (ev) => show(ev.detail.track.stream_id));
// @ts-expect-error: a misspelt name gets no typed detail.
client.addEventListener('participantjoind', (ev: CustomEvent<{participant: Participant}>) => show(ev.detail));

// ---- a student page ---------------------------------------------------------

async function student(): Promise<void> {
  document.querySelector('video')!.srcObject = await client.openCamera({video: {deviceId: {exact: 'cam'}}, audio: true});
  const joined: JoinedDetail = await client.connect();
  show(joined.room, client.state, client.url, client.room, client.self?.sid, client.serverVersion, client.iceServers, client.require);
  const stream: MediaStream = await client.publishCamera({video: true, audio: !device});
  const stopWatching: () => void = watchViolations(client, document, window);
  if (client.require.includes('screen')) show((await client.publishScreen()).id, client.screenStream?.id);
  const link: DeviceLink = await client.requestDeviceLink();
  show(stream.id, client.localStream?.id, link.url, link.qr, link.device, link.expires);
  client.reportViolation('face_missing', {confidence: 0.9});
  for (const [mid, layers] of client.layers) show(mid, layers.active);
  const stats = await client.getStats();
  stats.forEach((s) => show(s.type));
  show(client.rtt, client.peerConnection?.connectionState, client.pc?.signalingState);
  stopWatching();
  await client.leave();
}

// ---- a proctor page ---------------------------------------------------------

async function proctor(): Promise<void> {
  await client.connect();
  for (const [key, p] of client.participants) show(key, p.identity, client.participantBySid(p.sid)?.name);
  const tiles: ViewTile[] = [{identity: 'alice', height: 180}];
  const sent: boolean = client.focus('alice') && client.focus(null) && client.setView(tiles) && client.setView(null) &&
    client.sendMessage('alice', 'eyes on your screen') && client.flag('alice') && client.flag('alice', 'phone') &&
    client.note('alice', 'looked away') && client.end('alice') && client.end('alice', 'cheating');
  await client.startTalkback('alice');
  show(sent, client.stopTalkback());
  // @ts-expect-error: focus takes an identity.
  client.focus(42);
  client.close();
}

export {proctor, student};
