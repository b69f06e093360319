// publish.js: what this participant sends. Capturing the camera,
// microphone and screen, sending them on sendonly transceivers (the camera
// with simulcast and VP8 first), a proctor's talk-back microphone, and
// pausing the simulcast layers nobody watches when the server says so
// (`layers`). Negotiation follows by itself (negotiation.js).

import {InvigilError, mediaError} from './errors.js';
import {ClientEvent} from './events.js';

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
// first (onLayers relies on that order): the highest is the capture size,
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
 * Publisher owns the local media and the sending transceivers. Its host is
 * the client: {log, emit(type, detail), pc (the RTCPeerConnection once
 * joined), whenJoined() → Promise, closed() → boolean}.
 */
export class Publisher {
  /** localStream is the camera/microphone stream opened by openCamera(). */
  localStream = null;
  /** screenStream is the screen share publishScreen() opened, or null. */
  screenStream = null;
  /** layers maps a published m-line's mid → the last `layers` event detail. */
  layers = new Map();

  #host;
  #senders = new Map(); // RTCRtpTransceiver → {source: 'camera'|'microphone'|'screen'|'talkback', stream}
  #ownsLocalStream = false;

  constructor(host) {
    this.#host = host;
  }

  /** sending says whether anything was ever published (an offerer can restart ICE). */
  get sending() {
    return this.#senders.size > 0;
  }

  /**
   * openCamera asks for camera and/or microphone (getUserMedia with the SDK's
   * camera constraints) without publishing, e.g. for a preflight self-view.
   * It reuses tracks it opened before.
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
      if (this.#host.closed()) {
        got.getTracks().forEach((t) => t.stop());
        throw new InvigilError('closed', 'the client closed while the camera was opening');
      }
      got.getTracks().forEach((t) => stream.addTrack(t));
      this.localStream = stream;
      this.#ownsLocalStream = true;
    }
    return stream;
  }

  /** publishCamera opens the camera if needed and sends what it was asked to. */
  async publishCamera({video = true, audio = true} = {}) {
    await this.#host.whenJoined();
    const stream = await this.openCamera({video, audio});
    const published = new Set(this.#host.pc.getSenders().map((s) => s.track).filter(Boolean));
    for (const track of stream.getTracks()) {
      if (published.has(track)) continue;
      if ((track.kind === 'video' && !video) || (track.kind === 'audio' && !audio)) continue;
      this.#addSender(track, stream, track.kind === 'video' ? 'camera' : 'microphone');
      this.#host.log.info(`[invigil] publishing ${track.kind} (${track.label})`);
    }
    return stream;
  }

  /**
   * publishScreen shares a screen as a second video track, source `screen`,
   * without simulcast. When the student stops sharing from the browser's
   * own bar, the track is unpublished and `screenended` dispatched.
   */
  async publishScreen() {
    await this.#host.whenJoined();
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
    if (this.#host.closed()) {
      stream.getTracks().forEach((t) => t.stop());
      throw new InvigilError('closed', 'the client closed while the screen was being chosen');
    }
    const track = stream.getVideoTracks()[0];
    if ('contentHint' in track) track.contentHint = 'detail';
    const transceiver = this.#addSender(track, stream, 'screen');
    track.addEventListener('ended', () => {
      // The student pressed "Stop sharing": stop sending, so the server
      // unpublishes the track (a required one is an event at once).
      const pc = this.#host.pc;
      if (!this.#host.closed() && pc?.signalingState !== 'closed') {
        try {
          pc.removeTrack(transceiver.sender);
        } catch (err) {
          this.#host.log.warn(`[invigil] removing the ended screen share failed: ${err.message}`);
        }
      }
      this.#senders.delete(transceiver);
      if (this.screenStream === stream) this.screenStream = null;
      this.#host.emit(ClientEvent.ScreenEnded, {});
    });
    this.screenStream = stream;
    this.#host.log.info(`[invigil] publishing the screen (${track.label})`);
    return stream;
  }

  /**
   * talkbackMicrophone returns a proctor's talk-back microphone track,
   * opening and publishing it (source `talkback`) the first time.
   */
  async talkbackMicrophone() {
    await this.#host.whenJoined();
    let mic = this.talkbackTrack;
    if (mic) return mic;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({audio: microphoneConstraints(true), video: false});
    } catch (err) {
      throw mediaError(err);
    }
    mic = stream.getAudioTracks()[0];
    this.#addSender(mic, stream, 'talkback');
    this.#host.log.info(`[invigil] publishing the talk-back microphone (${mic.label})`);
    return mic;
  }

  /** talkbackTrack is the published talk-back microphone, or undefined. */
  get talkbackTrack() {
    for (const [t, info] of this.#senders) if (info.source === 'talkback') return t.sender.track ?? undefined;
    return undefined;
  }

  // #addSender sends track on a new sendonly transceiver; negotiationneeded follows.
  #addSender(track, stream, source) {
    const init = {direction: 'sendonly', streams: [stream]};
    if (source === 'camera') init.sendEncodings = cameraEncodings(track);
    if (source === 'screen') init.sendEncodings = [{maxBitrate: SCREEN.maxBitrate, maxFramerate: SCREEN.maxFrameRate}];
    const transceiver = this.#host.pc.addTransceiver(track, init);
    if (source === 'camera') {
      try {
        preferVP8(transceiver);
      } catch (err) {
        this.#host.log.warn(`[invigil] cannot prefer VP8: ${err.message}`);
      }
    }
    this.#senders.set(transceiver, {source, stream});
    return transceiver;
  }

  /** trackList is the offer's `tracks`: {mid, source} of each sending m-line. */
  trackList() {
    const tracks = [];
    for (const t of this.#host.pc?.getTransceivers() ?? []) {
      const sender = this.#senders.get(t);
      if (sender && t.mid !== null && t.sender.track && t.currentDirection !== 'stopped') {
        tracks.push({mid: t.mid, source: sender.source});
      }
    }
    return tracks;
  }

  /**
   * onLayers pauses the simulcast encodings nobody watches and resumes the
   * ones someone does (`layers`, docs/protocol.md). The lowest (first) stays
   * active whatever the message says, so a proctor always has a picture.
   */
  async onLayers(msg) {
    const t = this.#host.pc?.getTransceivers().find((x) => x.mid === msg.mid && this.#senders.has(x));
    const params = t?.sender.getParameters();
    if (!Array.isArray(msg.active) || !params?.encodings?.some((e) => e.rid)) {
      this.#host.log.debug(`[invigil] ignoring layers for mid ${msg.mid}: no active list or no simulcast sender`);
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
      this.#host.log.warn(`[invigil] ${error.message}`);
    }
    const active = t.sender.getParameters().encodings.filter((e) => e.active).map((e) => e.rid);
    const detail = {mid: msg.mid, trackId: msg.track_id ?? null, source: this.#senders.get(t).source,
      active, requested: msg.active.slice(), error};
    this.layers.set(msg.mid, detail);
    this.#host.log.info(`[invigil] layers of mid ${msg.mid}: sending ${active.join(',')}`);
    this.#host.emit(ClientEvent.Layers, detail);
  }

  /** stop stops the tracks the SDK opened (the camera it opened, any screen share). */
  stop() {
    if (this.#ownsLocalStream && this.localStream) this.localStream.getTracks().forEach((t) => t.stop());
    this.screenStream?.getTracks().forEach((t) => t.stop());
  }
}
