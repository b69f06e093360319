// The student page: preflight (camera permission and self-view), then join
// the room and publish camera + microphone. It never shows anything about
// other students; the server sends nothing about them anyway.

import {ClientEvent, InvigilClient, rejoinAfter, tokenClaims, tokenFromLocation, watchViolations} from '../sdk/invigil.js';
import {describeClose, describeError} from './messages.js';

const $ = (id) => document.getElementById(id);

const ui = {
  status: $('status'),
  title: $('preflight-title'),
  selfView: $('self-view'),
  error: $('error'),
  errorTitle: $('error-title'),
  errorDetail: $('error-detail'),
  errorCode: $('error-code'),
  retry: $('retry'),
  shareScreen: $('share-screen'),
  talkback: $('talkback'),
  talkbackFrom: $('talkback-from'),
  talkbackAudio: $('talkback-audio'),
};

let failed = false;

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function setStep(step, state) {
  $(`step-${step}`).dataset.state = state;
}

function fail(problem, step) {
  if (failed) return;
  failed = true;
  if (step) setStep(step, 'failed');
  document.body.classList.add('has-error');
  ui.title.textContent = 'Not connected';
  setStatus('error', problem.title);
  ui.errorTitle.textContent = problem.title;
  ui.errorDetail.textContent = problem.detail;
  ui.errorCode.textContent = problem.code;
  ui.error.hidden = false;
  console.error(`[student] ${problem.code}: ${problem.title}`);
}

ui.retry.addEventListener('click', () => location.reload());

function watch(client) {
  client.addEventListener(ClientEvent.ConnectionStateChange, ({detail}) => {
    if (failed) return;
    switch (detail.state) {
      case 'connected':
        setStep('publish', 'done');
        setStatus('live', 'Live: your proctor can see you');
        ui.title.textContent = 'You are checked in';
        break;
      case 'disconnected':
        setStatus('warning', 'Connection unstable…');
        break;
      case 'failed':
        fail(describeError('connection_lost'), 'publish');
        break;
      default:
        if (detail.state === 'connecting') setStatus('connecting', 'Connecting video…');
    }
  });
  client.addEventListener(ClientEvent.Error, ({detail}) => {
    if (detail.fatal || detail.code === 'negotiation_failed') fail(describeError(detail.code, detail.message));
  });
  client.addEventListener(ClientEvent.Message, ({detail}) => {
    // A proctor's message: shown prominently until acknowledged.
    showProctorMessage(detail.text, () => client.acknowledge(detail.messageId));
  });
  client.addEventListener(ClientEvent.Talkback, ({detail}) => showTalkback(detail));
  client.addEventListener(ClientEvent.Ended, ({detail}) => {
    endedReason = detail.reason || 'A proctor ended your exam session.';
  });
  client.addEventListener(ClientEvent.Closed, ({detail}) => {
    if (detail.leaveReason === 'room_ended') {
      // The exam platform ended the exam for everyone: no rejoin.
      ui.title.textContent = 'The exam has ended';
      document.body.dataset.ended = 'room_ended';
      setStatus('ended', 'The exam has ended');
      return;
    }
    if (endedReason) {
      fail({title: 'Your session was ended by the proctor', detail: endedReason}, 'publish');
      return;
    }
    const wait = rejoinAfter(detail, attempt);
    if (wait >= 0) {
      // The node went away or is draining: join again through the same
      // address; the cluster sends us to the room's (new) node.
      attempt++;
      setStatus('connecting', `Connection lost; reconnecting (attempt ${attempt})…`);
      setTimeout(main, wait);
      return;
    }
    if (detail.initiator !== 'client') {
      fail(describeClose(detail));
      return;
    }
    if (failed) return;
    ui.title.textContent = 'You left the exam room';
    setStatus('ended', 'Not sharing');
  });
}

// attempt counts rejoins since the last session that got going.
let attempt = 0;
// endedReason is set when a proctor ended the session: no rejoin.
let endedReason = '';

/** showProctorMessage puts a proctor's message in front of the student. */
function showProctorMessage(text, onAck) {
  const box = document.createElement('div');
  box.className = 'proctor-message';
  box.setAttribute('role', 'alertdialog');
  box.setAttribute('aria-live', 'assertive');
  const p = document.createElement('p');
  p.textContent = text;
  const ok = document.createElement('button');
  ok.type = 'button';
  ok.textContent = 'I have read this';
  ok.addEventListener('click', () => {
    onAck();
    box.remove();
  });
  box.append(p, ok);
  document.body.prepend(box);
  ok.focus();
}

/**
 * offerScreen shows the screen-share step when the exam requires it; the
 * browser asks the student which screen to share after they click.
 */
function offerScreen(client) {
  if (!client.require.includes('screen')) return;
  $('step-screen').hidden = false;
  setStep('screen', 'active');
  ui.shareScreen.hidden = false;
  ui.shareScreen.onclick = async () => {
    ui.shareScreen.disabled = true;
    try {
      await client.publishScreen();
      setStep('screen', 'done');
      ui.shareScreen.hidden = true;
    } catch (err) {
      setStep('screen', 'failed');
      setStatus('warning', describeError(err.code ?? 'media_failed', err.message).title);
    } finally {
      ui.shareScreen.disabled = false;
    }
  };
  client.addEventListener(ClientEvent.ScreenEnded, () => {
    setStep('screen', 'failed');
    ui.shareScreen.textContent = 'Share your screen again';
    ui.shareScreen.hidden = false;
    setStatus('warning', 'Screen sharing stopped: your exam requires it');
  });
}

/**
 * offerSecondCamera lets the student add their phone: the server mints a
 * link (and a QR code of it) that joins as this student's second device.
 */
function offerSecondCamera(client) {
  $('second-camera').hidden = false;
  $('device-link').onclick = async () => {
    try {
      const link = await client.requestDeviceLink();
      $('device-qr-img').src = link.qr;
      $('device-url').href = link.url;
      $('device-qr').hidden = false;
    } catch (err) {
      setStatus('warning', describeError(err.code ?? 'media_failed', err.message).title);
    }
  };
}

/**
 * showTalkback plays a proctor's voice and says who is speaking, while
 * they talk; the banner goes when they stop.
 */
function showTalkback({talking, from, stream}) {
  ui.talkback.hidden = !talking;
  ui.talkbackFrom.textContent = from || 'Your proctor';
  if (talking && stream && ui.talkbackAudio.srcObject !== stream) {
    ui.talkbackAudio.srcObject = stream;
  }
  if (talking) ui.talkbackAudio.play().catch((err) => console.warn(`[student] cannot play the proctor's voice: ${err.message}`));
}

async function main() {
  failed = false;
  const token = tokenFromLocation();
  if (!token) {
    fail(describeError('token_missing'), 'connect');
    return;
  }
  const client = new InvigilClient({token, logger: console});
  window.invigilClient = client;
  watch(client);
  // A second device (a phone opened from the device link) sends its camera
  // only, the back one by default: a view of the desk and room.
  const device = tokenClaims(token)?.device ?? '';
  const media = device ? {video: {facingMode: {ideal: 'environment'}}, audio: false} : {video: true, audio: true};
  if (device) {
    document.title = 'Invigil · Second camera';
    ui.title.textContent = 'Second camera';
  }

  setStep('camera', 'active');
  setStatus('camera', 'Waiting for camera permission…');
  try {
    ui.selfView.srcObject = await client.openCamera(media);
  } catch (err) {
    fail(describeError(err.code ?? 'media_failed', err.message), 'camera');
    return;
  }
  setStep('camera', 'done');

  setStep('connect', 'active');
  setStatus('connecting', 'Connecting to the exam room…');
  try {
    await client.connect();
  } catch (err) {
    fail(describeError(err.code ?? 'connection_failed', err.message), 'connect');
    return;
  }
  setStep('connect', 'done');

  setStep('publish', 'active');
  setStatus('connecting', 'Sharing your camera…');
  try {
    await client.publishCamera({video: true, audio: !device});
    attempt = 0;
    if (!device) {
      watchViolations(client);
      offerScreen(client);
      offerSecondCamera(client);
    }
  } catch (err) {
    fail(describeError(err.code ?? 'media_failed', err.message), 'publish');
  }
}

main();
