// @ts-self-types="./invigil.d.ts"
//
// Invigil browser SDK: ES modules, no dependencies, no build step. This is
// the entry; its exports are the whole public API, typed in invigil.d.ts
// beside it and documented in docs/sdk.md.
//
// It speaks the signaling protocol of docs/protocol.md (v1) over one WebSocket
// and runs one RTCPeerConnection as the POLITE peer of "perfect negotiation"
// (the server is the impolite one).
//
//   import {ClientEvent, InvigilClient, tokenFromLocation} from 'https://invigil.example/sdk/invigil.js';
//   const client = new InvigilClient({token: tokenFromLocation()});
//   client.addEventListener(ClientEvent.Closed, (ev) => console.log(ev.detail));
//   await client.connect();
//   await client.publishCamera();
//
// The modules, one concern each:
//   client.js       InvigilClient: lifecycle, state, events; routes messages to
//   signal.js       the signaling client: WebSocket, join, redirects, replies, rejoinAfter
//   negotiation.js  the RTCPeerConnection: perfect negotiation, ICE restart
//   publish.js      camera, microphone, screen; simulcast and layer pausing
//   room.js         participants and tracks; focus, view, interventions, talk-back
//   violations.js   violation reports and the page's own signals
//   events.js       event names, deprecated names and keys
//   errors.js       InvigilError and the error code sets
//   token.js        the join token in the URL fragment

export {InvigilClient} from './client.js';
export {FATAL_ERROR_CODES, InvigilError, RETRYABLE_CODES} from './errors.js';
export {ClientEvent, DEPRECATED_EVENTS} from './events.js';
export {CAMERA, SCREEN, SIMULCAST_LAYERS} from './publish.js';
export {participantKey} from './room.js';
export {PING_INTERVAL_MS, PROTOCOL_VERSION, defaultSignalingURL, rejoinAfter} from './signal.js';
export {tokenClaims, tokenFromLocation} from './token.js';
export {watchViolations} from './violations.js';
