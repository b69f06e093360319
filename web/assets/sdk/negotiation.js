// negotiation.js: the session's one RTCPeerConnection, run as the POLITE
// peer of "perfect negotiation" (the server is the impolite one; W3C
// WebRTC 1.0, "Perfect negotiation example"), and network recovery by ICE
// restart. It sends and receives descriptions and candidates through its
// host and knows nothing of rooms or of what is published.

import {InvigilError} from './errors.js';
import {ClientEvent} from './events.js';

// MAX_HELD_CANDIDATES bounds the remote candidates queued before a remote
// description exists; the server holds at most 64 of ours, we mirror that.
const MAX_HELD_CANDIDATES = 64;

/**
 * Negotiator owns the RTCPeerConnection. Its host is the client: {log,
 * send(msg), emit(type, detail), trackList() → [{mid, source}] of the
 * sending m-lines (publishing's), canRestartIce() → whether this client
 * offers anything, onTrack(RTCTrackEvent)}.
 */
export class Negotiator {
  /** pc is the RTCPeerConnection, null until open(). */
  pc = null;

  #host;
  #rtcConfiguration;
  #seq = 0;
  #makingOffer = false;
  #settingRemoteAnswer = false;
  #pendingOfferID = null;
  #heldCandidates = [];
  #networkListener = null;

  constructor(host, rtcConfiguration = {}) {
    this.#host = host;
    this.#rtcConfiguration = rtcConfiguration;
  }

  /**
   * open creates the PeerConnection with the server's ICE servers first and
   * the page's own (rtcConfiguration.iceServers) after them.
   */
  open(iceServers) {
    const extra = this.#rtcConfiguration;
    const pc = new RTCPeerConnection({
      bundlePolicy: 'max-bundle',
      ...extra,
      iceServers: [...iceServers, ...(extra.iceServers ?? [])],
    });
    pc.addEventListener('negotiationneeded', () => this.#negotiate());
    pc.addEventListener('icecandidate', ({candidate}) => {
      if (candidate && candidate.candidate) this.#host.send({type: 'candidate', candidate: candidate.toJSON()});
    });
    pc.addEventListener('track', (ev) => this.#host.onTrack(ev));
    pc.addEventListener('connectionstatechange', () => {
      this.#host.log.info(`[invigil] connection ${pc.connectionState}`);
      this.#host.emit(ClientEvent.ConnectionStateChange, {state: pc.connectionState});
      if (pc.connectionState === 'failed') this.restartIce('connection failed');
    });
    this.pc = pc;
    this.#watchNetwork();
    return pc;
  }

  /** close closes the PeerConnection and stops watching the network. */
  close() {
    this.#unwatchNetwork();
    this.#heldCandidates = [];
    if (this.pc && this.pc.signalingState !== 'closed') this.pc.close();
  }

  async #negotiate() {
    const pc = this.pc;
    if (!pc || pc.signalingState === 'closed') return;
    try {
      this.#makingOffer = true;
      await pc.setLocalDescription();
      // A server offer may have rolled ours back meanwhile; send only what we hold.
      if (pc.signalingState !== 'have-local-offer') return;
      const id = `offer-${++this.#seq}`;
      this.#pendingOfferID = id;
      this.#host.send({type: 'offer', id, sdp: pc.localDescription.sdp, tracks: this.#host.trackList()});
      this.#host.log.debug(`[invigil] sent ${id}`);
    } catch (err) {
      this.#host.emit(ClientEvent.Error, new InvigilError('negotiation_failed', `creating an offer failed: ${err.message}`, {cause: err}));
    } finally {
      this.#makingOffer = false;
    }
  }

  /** onDescription applies the server's `offer` or `answer`, answering an offer. */
  async onDescription(msg) {
    const pc = this.pc;
    if (!pc || typeof msg.sdp !== 'string') return;
    const type = msg.type;
    if (type === 'answer' && pc.signalingState !== 'have-local-offer') {
      this.#host.log.debug(`[invigil] ignoring an answer in state ${pc.signalingState}`);
      return;
    }
    const readyForOffer = !this.#makingOffer && (pc.signalingState === 'stable' || this.#settingRemoteAnswer);
    const collision = type === 'offer' && !readyForOffer;
    this.#host.log.debug(`[invigil] received ${type} in state ${pc.signalingState}`);
    if (collision) this.#host.log.debug('[invigil] offer collision: rolling back ours (polite peer)');
    try {
      this.#settingRemoteAnswer = type === 'answer';
      // setRemoteDescription(offer) in have-local-offer rolls back implicitly.
      await pc.setRemoteDescription({type, sdp: msg.sdp});
      this.#settingRemoteAnswer = false;
      if (type === 'answer' || collision) this.#pendingOfferID = null;
      await this.#flushCandidates();
      if (type === 'offer') {
        await pc.setLocalDescription();
        this.#host.send({type: 'answer', sdp: pc.localDescription.sdp});
        this.#host.log.debug('[invigil] sent answer');
      }
    } catch (err) {
      this.#settingRemoteAnswer = false;
      this.#host.emit(ClientEvent.Error, new InvigilError('negotiation_failed', `applying the server's ${type} failed: ${err.message}`, {cause: err}));
    }
  }

  /**
   * onGlare handles the server ignoring our offer because its own crossed
   * it. Usually its offer already rolled ours back; if ours is still
   * pending, roll back explicitly; negotiationneeded re-offers once stable.
   */
  async onGlare(ref) {
    const pc = this.pc;
    this.#host.log.debug(`[invigil] server reported glare for ${ref}`);
    if (!pc || ref !== this.#pendingOfferID || pc.signalingState !== 'have-local-offer') return;
    this.#pendingOfferID = null;
    try {
      await pc.setLocalDescription({type: 'rollback'});
    } catch (err) {
      this.#host.log.warn('[invigil] rollback after glare failed', err);
    }
  }

  /** onCandidate adds a server candidate, or holds it until a remote description exists. */
  async onCandidate(msg) {
    const candidate = msg.candidate;
    if (!candidate || !candidate.candidate) return; // end of candidates
    if (!this.pc || !this.pc.remoteDescription) {
      if (this.#heldCandidates.length < MAX_HELD_CANDIDATES) this.#heldCandidates.push(candidate);
      else this.#host.log.warn('[invigil] dropping a remote candidate: too many held');
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
      this.#host.log.warn(`[invigil] remote candidate rejected: ${err.message}`);
    }
  }

  // ---- network recovery: ICE restart ------------------------------------------
  // When the network changes (Wi-Fi hand-over, VPN, cable) or ICE fails, a
  // publisher restarts ICE; the offer that follows carries new credentials
  // over the same signaling connection, so the participant stays the same.

  #watchNetwork() {
    if (this.#networkListener || typeof window === 'undefined') return;
    this.#networkListener = () => this.restartIce('network changed');
    window.addEventListener('online', this.#networkListener);
    navigator.connection?.addEventListener?.('change', this.#networkListener);
  }

  #unwatchNetwork() {
    if (!this.#networkListener) return;
    window.removeEventListener('online', this.#networkListener);
    navigator.connection?.removeEventListener?.('change', this.#networkListener);
    this.#networkListener = null;
  }

  /**
   * restartIce restarts ICE when this client offers anything: a client
   * that publishes nothing relies on the server's side and, failing that,
   * on rejoining (which resumes it).
   */
  restartIce(why) {
    const pc = this.pc;
    if (!pc || !this.#host.canRestartIce() || pc.connectionState === 'closed') return;
    this.#host.log.info(`[invigil] restarting ICE: ${why}`);
    pc.restartIce();
  }
}
