// glare_harness.js drives the SDK against an in-page fake server to check the
// polite side of perfect negotiation. The Go test replaces MODE with a JSON
// string:
//   "crossed":     the client publishes its camera (a normal exchange, with a
//                  server candidate sent before the answer so the client must
//                  hold it), then adds its microphone; the server's own offer
//                  (talk-back video) crosses that second offer and is followed
//                  by `error glare`, the order the real server uses.
//   "glare-first": the server rejects the client's first offer with `error
//                  glare` and sends no offer; the client must roll back itself.
// The fake server is an RTCPeerConnection in the same page acting as the
// impolite peer; a fake WebSocket carries the protocol's JSON frames. Like
// the real server, it offers only after a first exchange with the client, so
// both sides agree on RTP header extension IDs.
(async () => {
  const mode = MODE;
  const {InvigilClient} = await import('/sdk/invigil.js');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const trace = [];
  const clientErrors = [];
  const clientOffers = [];
  const clientTracks = [];

  // The server's media: a canvas video standing in for talk-back.
  const canvas = document.createElement('canvas');
  canvas.width = 160;
  canvas.height = 90;
  const g = canvas.getContext('2d');
  const painter = setInterval(() => {
    g.fillStyle = `hsl(${(Date.now() / 5) % 360} 80% 50%)`;
    g.fillRect(0, 0, 160, 90);
  }, 40);
  const serverStream = canvas.captureStream(15);
  const server = new RTCPeerConnection();
  const serverHeld = [];
  let socket = null;

  const deliver = (msg) => {
    trace.push(`server→ ${msg.type}${msg.code ? ' ' + msg.code : ''}`);
    socket.dispatchEvent(new MessageEvent('message', {data: JSON.stringify({v: 1, ...msg})}));
  };
  const munge = (sdp) => sdp.replaceAll(serverStream.id, 'PA_proctor');

  // holdNextCandidate makes the server send its next candidate ahead of the
  // answer it is about to send, so the client sees a candidate before any
  // remote description.
  let holdNextCandidate = mode === 'crossed';
  let heldCandidate;
  const candidateHeld = new Promise((r) => { heldCandidate = r; });
  server.addEventListener('icecandidate', ({candidate}) => {
    if (!candidate || !candidate.candidate) return;
    if (holdNextCandidate) {
      holdNextCandidate = false;
      heldCandidate(candidate.toJSON());
      return;
    }
    deliver({type: 'candidate', candidate: candidate.toJSON()});
  });

  const answer = async (sdp) => {
    await server.setRemoteDescription({type: 'offer', sdp});
    for (const c of serverHeld.splice(0)) await server.addIceCandidate(c);
    await server.setLocalDescription();
    return munge(server.localDescription.sdp);
  };

  let offersSeen = 0;
  async function onClientMessage(msg) {
    trace.push(`client→ ${msg.type}${msg.id ? ' ' + msg.id : ''}`);
    switch (msg.type) {
      case 'join':
        deliver({type: 'joined', room: 'glare', server_version: 'harness',
          participant: {sid: 'PA_me', identity: 'me', name: 'Me', role: 'student'},
          participants: [{sid: 'PA_proctor', identity: 'proctor', name: 'Proctor', role: 'proctor', tracks: []}],
          ice_servers: []});
        break;
      case 'offer':
        clientOffers.push({id: msg.id, tracks: msg.tracks ?? []});
        offersSeen++;
        if (mode === 'glare-first' && offersSeen === 1) {
          deliver({type: 'error', code: 'glare', message: 'offer crossed the server offer', ref: msg.id});
          break;
        }
        if (mode === 'crossed' && offersSeen === 1) {
          const sdp = await answer(msg.sdp);
          deliver({type: 'candidate', candidate: await candidateHeld});
          deliver({type: 'answer', sdp});
          break;
        }
        if (mode === 'crossed' && offersSeen === 2) {
          // The server's own offer was "already outstanding": ignore the client's.
          server.addTransceiver(serverStream.getVideoTracks()[0], {direction: 'sendonly', streams: [serverStream]});
          await server.setLocalDescription();
          deliver({type: 'offer', sdp: munge(server.localDescription.sdp)});
          deliver({type: 'error', code: 'glare', message: 'offer crossed the server offer', ref: msg.id});
          break;
        }
        deliver({type: 'answer', sdp: await answer(msg.sdp)});
        break;
      case 'answer':
        await server.setRemoteDescription({type: 'answer', sdp: msg.sdp});
        break;
      case 'candidate':
        if (!msg.candidate?.candidate) break;
        if (server.remoteDescription) await server.addIceCandidate(msg.candidate);
        else serverHeld.push(msg.candidate);
        break;
    }
  }

  class FakeSocket extends EventTarget {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSING = 2;
    static CLOSED = 3;
    readyState = 0;
    #inbox = Promise.resolve();
    constructor(url) {
      super();
      this.url = url;
      socket = this;
      setTimeout(() => {
        this.readyState = 1;
        this.dispatchEvent(new Event('open'));
      });
    }
    send(data) {
      const msg = JSON.parse(data);
      this.#inbox = this.#inbox.then(() => onClientMessage(msg)).catch((err) => trace.push(`server failed: ${err}`));
    }
    close(code = 1000, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      setTimeout(() => this.dispatchEvent(new CloseEvent('close', {code, reason, wasClean: true})));
    }
  }

  const realWebSocket = window.WebSocket;
  window.WebSocket = FakeSocket;
  const warnings = [];
  const logger = {
    debug: (...a) => console.debug(...a),
    info: (...a) => console.info(...a),
    warn: (...a) => { warnings.push(a.join(' ')); console.warn(...a); },
    error: (...a) => { warnings.push(a.join(' ')); console.error(...a); },
  };
  const client = new InvigilClient({token: 'harness', url: 'ws://fake.invalid/v1/rtc', logger});
  client.addEventListener('error', ({detail}) => clientErrors.push(`${detail.code}: ${detail.message}`));
  client.addEventListener('track', ({detail}) => clientTracks.push({kind: detail.track.kind, identity: detail.identity}));

  const framesDecoded = async (pc) => {
    let n = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded ?? 0;
    });
    return n;
  };

  const result = {mode, ok: false};

  // settled waits until both sides are stable, the client has sent
  // wantOffers offers, and each side decodes at least the frames asked for.
  // Up to 15 s: a loaded CI machine (tests run in parallel) can take
  // seconds to bring an in-page PeerConnection to its first frame.
  const settled = async (wantOffers, wantServerFrames, wantClientFrames) => {
    for (let i = 0; i < 150; i++) {
      result.serverFrames = await framesDecoded(server);
      result.clientFrames = await framesDecoded(client.peerConnection);
      if (clientOffers.length === wantOffers &&
          result.serverFrames >= wantServerFrames && result.clientFrames >= wantClientFrames &&
          client.peerConnection.signalingState === 'stable' && server.signalingState === 'stable') {
        return true;
      }
      await sleep(100);
    }
    return false;
  };

  try {
    await client.connect();
    if (mode === 'crossed') {
      await client.publishCamera({video: true, audio: false});
      if (!(await settled(1, 1, 0))) throw new Error('the first exchange did not settle');
      await client.publishCamera({video: true, audio: true});
      result.ok = await settled(3, 1, 1);
    } else {
      await client.publishCamera({video: true, audio: true});
      result.ok = await settled(2, 1, 0);
    }
  } catch (err) {
    result.exception = `${err.code ?? err.name}: ${err.message}`;
  }

  // Each offer's tracks list must name sending m-lines of the right kind.
  result.offerTracksValid = clientOffers.length > 0 && clientOffers.at(-1).tracks.every(({mid, source}) => {
    const t = client.peerConnection?.getTransceivers().find((x) => x.mid === mid);
    return t?.sender.track?.kind === (source === 'camera' ? 'video' : 'audio');
  });
  result.lastOfferSources = (clientOffers.at(-1)?.tracks ?? []).map((t) => t.source).sort();
  result.clientOffers = clientOffers.map((o) => o.id);
  result.clientErrors = clientErrors;
  result.warnings = warnings;
  result.clientTracks = clientTracks;
  result.clientSignaling = client.peerConnection?.signalingState ?? '';
  result.serverSignaling = server.signalingState;
  result.trace = trace;

  client.close();
  server.close();
  clearInterval(painter);
  window.WebSocket = realWebSocket;
  return result;
})()
