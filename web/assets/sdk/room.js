// room.js: what this participant sees of the room and does to others in
// it. The participants this role may see (a proctor: every student) with
// their published tracks and the remote MediaStreamTracks that carry them;
// a proctor's focus, view and interventions (message, flag, note, end,
// talk-back); and their other side on a student's page (a proctor's
// message, talk-back voice, the session ended). Objects handed out have
// camelCase keys (events.js); the wire's snake_case stays here.

import {InvigilError} from './errors.js';
import {ClientEvent, withDeprecatedKeys} from './events.js';

// MAX_HELD_TRACKS bounds remote tracks whose publisher is not known yet.
const MAX_HELD_TRACKS = 64;

// MAX_VIEW_TILES is the most tiles a `view` message may list (docs/protocol.md).
const MAX_VIEW_TILES = 500;

/**
 * participantKey is the key of client.participants for a participant: its
 * identity, or `identity/device` for a student's additional device (a
 * phone), which is a participant of its own.
 */
export function participantKey(info) {
  return info.device ? `${info.identity}/${info.device}` : info.identity;
}

/**
 * RoomView keeps the room as this participant sees it. Its host is the
 * client: {log, emit(type, detail), send(msg) → boolean, request(msg) →
 * Promise<reply>, whenJoined() → Promise, talkbackMicrophone() →
 * Promise<MediaStreamTrack>, talkbackTrack() → MediaStreamTrack|undefined}.
 */
export class RoomView {
  /** participants maps participantKey → participant this role may see. */
  participants = new Map();

  #host;
  #heldTracks = new Map(); // publisher sid → [RTCTrackEvent]
  #talkbacks = new Map(); // a proctor's stream id → {from, talking, stream}

  constructor(host) {
    this.#host = host;
  }

  /** participantBySid returns the participant with this sid, or undefined. */
  participantBySid(sid) {
    for (const p of this.participants.values()) if (p.sid === sid) return p;
    return undefined;
  }

  /** clear forgets everything when the session ends. */
  clear() {
    this.#heldTracks.clear();
    this.#talkbacks.clear();
  }

  // ---- participants and their tracks ---------------------------------------------

  /** trackInfo is a wire track announcement as the SDK hands it out. */
  #trackInfo(t) {
    return withDeprecatedKeys({trackId: t.track_id ?? '', streamId: t.stream_id ?? '', kind: t.kind ?? '', source: t.source ?? ''},
      {track_id: 'trackId', stream_id: 'streamId'}, (m) => this.#host.log.warn(m));
  }

  /** upsert adds or refreshes a participant from its wire description. */
  upsert(info) {
    if (!info || !info.identity) return null;
    const key = participantKey(info);
    let p = this.participants.get(key);
    if (!p || (info.sid && p.sid !== info.sid)) {
      p = {sid: info.sid ?? '', identity: info.identity, device: info.device ?? '', name: info.identity, role: null,
        tracks: [], mediaTracks: new Map(), stream: null};
      this.participants.set(key, p);
    }
    if (info.name) p.name = info.name;
    if (info.role) p.role = info.role;
    if (Array.isArray(info.tracks)) p.tracks = info.tracks.map((t) => this.#trackInfo(t));
    this.#releaseHeldTracks(p);
    return p;
  }

  onParticipantJoined(msg) {
    const p = this.upsert(msg.participant);
    if (!p) return;
    this.#host.log.info(`[invigil] participant joined: ${p.identity} (${p.role}, ${p.sid})`);
    this.#host.emit(ClientEvent.ParticipantJoined, {participant: p});
  }

  onParticipantLeft(msg) {
    const info = msg.participant;
    if (!info || !info.identity) return;
    const key = participantKey(info);
    const current = this.participants.get(key);
    this.#heldTracks.delete(info.sid);
    if (current && info.sid && current.sid !== info.sid) {
      // A stale departure of a session this identity has since replaced.
      this.#host.log.debug(`[invigil] ignoring departure of old session ${info.sid} of ${info.identity}`);
      return;
    }
    this.participants.delete(key);
    const reason = msg.reason ?? 'left';
    this.#host.log.info(`[invigil] participant left: ${info.identity} (${info.sid}, ${reason})`);
    const participant = current ?? {sid: info.sid ?? '', identity: info.identity, device: info.device ?? '',
      name: info.name || info.identity, role: info.role ?? null, tracks: [], mediaTracks: new Map(), stream: null};
    this.#host.emit(ClientEvent.ParticipantLeft, {participant, reason});
  }

  #announced(msg) {
    return (msg.participant_sid && this.participantBySid(msg.participant_sid)) || this.participants.get(msg.identity);
  }

  onTrackPublished(msg) {
    if (!msg.track) return;
    const track = this.#trackInfo(msg.track);
    const p = this.#announced(msg) ?? this.upsert({sid: msg.participant_sid, identity: msg.identity});
    if (!p) return;
    p.tracks = p.tracks.filter((t) => t.trackId !== track.trackId).concat(track);
    this.#releaseHeldTracks(p);
    this.#host.emit(ClientEvent.TrackPublished, {participant: p, track});
  }

  onTrackUnpublished(msg) {
    if (!msg.track) return;
    const track = this.#trackInfo(msg.track);
    const p = this.#announced(msg);
    if (p) {
      p.tracks = p.tracks.filter((t) => t.trackId !== track.trackId);
      p.mediaTracks.delete(track.trackId);
    }
    this.#host.emit(ClientEvent.TrackUnpublished, {participant: p ?? null, track});
  }

  /** onTrack places a remote track: a proctor's talk-back voice, or a participant's media. */
  onTrack(ev) {
    const stream = ev.streams[0] ?? null;
    const talk = stream ? this.#talkbacks.get(stream.id) : undefined;
    if (talk) {
      talk.stream = stream;
      if (talk.talking) this.#host.emit(ClientEvent.Talkback, {talking: true, from: talk.from, streamId: stream.id, stream});
      return;
    }
    const participant = stream ? this.participantBySid(stream.id) : undefined;
    if (stream && !participant) {
      // ontrack may come before the announcement naming its publisher.
      const held = this.#heldTracks.get(stream.id) ?? [];
      if (held.length < MAX_HELD_TRACKS) held.push(ev);
      this.#heldTracks.set(stream.id, held);
      this.#host.log.debug(`[invigil] holding track ${ev.track.id} until ${stream.id} is announced`);
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
    this.#host.log.debug(`[invigil] ${track.kind} track ${track.id} from ${participant?.identity ?? 'unknown'}`);
    this.#host.emit(ClientEvent.Track, {
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

  // ---- a proctor's focus, view and interventions ------------------------------

  /** focus asks for one student's high layer; '' or null returns to the grid. */
  focus(identity) {
    return this.#host.send({type: 'focus', identity: String(identity ?? '')});
  }

  /** setView lists the visible student tiles [{identity, height}], or null for all at the low layer. */
  setView(tiles) {
    const list = tiles == null ? null : Array.from(tiles).slice(0, MAX_VIEW_TILES).map((t) => ({
      identity: String(t.identity), height: Math.max(0, Math.round(Number(t.height) || 0)),
    }));
    return this.#host.send({type: 'view', tiles: list});
  }

  /** intervene sends one of message, flag, note or end about a student. */
  intervene(type, identity, text) {
    return this.#host.send({type, identity: String(identity), text: String(text)});
  }

  /** startTalkback makes this proctor's microphone heard by one student alone. */
  async startTalkback(identity) {
    const mic = await this.#host.talkbackMicrophone();
    mic.enabled = true;
    if (!this.#host.send({type: 'talkback', identity: String(identity)})) {
      throw new InvigilError('not_connected', 'the signaling connection is not open');
    }
  }

  /** stopTalkback stops talking; the microphone stays published, muted. */
  stopTalkback() {
    const mic = this.#host.talkbackTrack();
    if (mic) mic.enabled = false;
    return this.#host.send({type: 'talkback', identity: ''});
  }

  onAuditEvent(msg) {
    this.#host.emit(ClientEvent.AuditEvent, msg.event ?? {});
  }

  // ---- the student's side ---------------------------------------------------

  onMessage(msg) {
    this.#host.emit(ClientEvent.Message, {messageId: msg.message_id, text: msg.text ?? '', from: msg.from ?? ''});
  }

  /** acknowledge tells the proctor a `message` was seen. */
  acknowledge(messageId) {
    return this.#host.send({type: 'message_ack', message_id: Number(messageId)});
  }

  onEnded(msg) {
    this.#host.emit(ClientEvent.Ended, {reason: msg.reason ?? '', from: msg.from ?? ''});
  }

  /**
   * onTalkback: a proctor started or stopped talking to this student. Its
   * audio track may have arrived before this message (held as a track of
   * an unknown publisher) or may come after it.
   */
  onTalkback(msg) {
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
    this.#host.log.info(`[invigil] ${entry.from || 'a proctor'} ${entry.talking ? 'is talking to you' : 'stopped talking'}`);
    this.#host.emit(ClientEvent.Talkback, {talking: entry.talking, from: entry.from, streamId: id, stream: entry.stream});
  }

  /** requestDeviceLink asks for a link that adds the student's phone as a second camera. */
  async requestDeviceLink() {
    await this.#host.whenJoined();
    const reply = await this.#host.request({type: 'device_link'});
    return {device: reply.device, url: reply.url, qr: reply.qr, expires: reply.expires};
  }
}
