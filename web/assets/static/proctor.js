// The proctor page: a grid of student tiles, one per student, each holding
// that student's video. Clicking a tile focuses the student (enlarged, the
// high simulcast layer); clicking it again returns to the grid. The page
// tells the server which tiles are visible and how high, so students
// scrolled out of view cost no video and large tiles get the high layer.
//
// DOM hooks (stable: tests and integrators rely on them): each tile is an element with
// data-identity="<identity>" holding the student's <video>.

import {ClientEvent, InvigilClient, rejoinAfter, tokenFromLocation} from '../sdk/invigil.js';
import {describeClose, describeError} from './messages.js';

const $ = (id) => document.getElementById(id);

const ui = {
  grid: $('grid'),
  empty: $('empty'),
  template: $('tile-template'),
  status: $('status'),
  roomName: $('room-name'),
  count: $('student-count'),
  focusHint: $('focus-hint'),
  error: $('error'),
  errorTitle: $('error-title'),
  errorDetail: $('error-detail'),
  errorCode: $('error-code'),
  retry: $('retry'),
  timeline: $('timeline'),
};

/** tiles maps identity → {el, video, name, state, sid, seenVideo}. */
const tiles = new Map();
let focused = null;
let sentFocus = ''; // the identity the server was last told to focus ('' = grid)
let failed = false;
let client = null;

function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.status.textContent = text;
}

function fail(problem) {
  if (failed) return;
  failed = true;
  setStatus('error', problem.title);
  ui.errorTitle.textContent = problem.title;
  ui.errorDetail.textContent = problem.detail;
  ui.errorCode.textContent = problem.code;
  ui.error.hidden = false;
  console.error(`[proctor] ${problem.code}: ${problem.title}`);
}

ui.retry.addEventListener('click', () => location.reload());

// ---- focus -------------------------------------------------------------------

/**
 * setFocus is the single place that changes which student is focused
 * (identity) or returns to the grid (null). It sends the protocol's `focus`
 * message, so the server switches that student to the high simulcast layer,
 * and dispatches `invigil:focus` on document for integrators.
 */
function setFocus(identity) {
  focused = identity && tiles.has(identity) ? identity : null;
  if ((focused ?? '') !== sentFocus && client?.focus(focused ?? '')) sentFocus = focused ?? '';
  ui.grid.classList.toggle('has-focus', focused !== null);
  ui.focusHint.hidden = focused === null;
  for (const [id, tile] of tiles) {
    const on = id === focused;
    tile.el.classList.toggle('is-focused', on);
    tile.el.setAttribute('aria-pressed', String(on));
  }
  if (focused) tiles.get(focused).el.scrollIntoView({block: 'nearest'});
  console.info(`[proctor] focus ${focused ?? '(grid)'}`);
  document.dispatchEvent(new CustomEvent('invigil:focus', {detail: {identity: focused}}));
}

function toggleFocus(identity) {
  setFocus(focused === identity ? null : identity);
}

document.addEventListener('keydown', (ev) => {
  if (ev.key === 'Escape' && focused) setFocus(null);
});

// ---- view: which tiles are visible, and how high -----------------------------

// VIEW_DELAY_MS coalesces scrolling and resizing into one `view` message at
// most every 200 ms; the server allows 20 messages a second.
const VIEW_DELAY_MS = 200;
const visible = new Set(); // identities whose tiles intersect the viewport
let viewTimer = null;
let sentView = null; // JSON of the tiles last sent

const intersections = new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (e.isIntersecting) visible.add(e.target.dataset.identity);
    else visible.delete(e.target.dataset.identity);
  }
  scheduleView();
});
const resizes = new ResizeObserver(() => scheduleView());

function scheduleView() {
  viewTimer ??= setTimeout(sendView, VIEW_DELAY_MS);
}

/** sendView reports the visible tiles and their heights when they changed. */
function sendView() {
  viewTimer = null;
  if (client?.state !== 'joined') return;
  const view = [...visible].filter((id) => tiles.has(id)).sort().map((identity) => ({
    identity, height: Math.round(tiles.get(identity).el.getBoundingClientRect().height),
  }));
  const json = JSON.stringify(view);
  if (json === sentView) return;
  if (client.setView(view)) sentView = json;
  console.debug(`[proctor] view ${view.map((t) => `${t.identity}:${t.height}`).join(' ') || '(none)'}`);
}

// ---- the room's audit trail, live ---------------------------------------------

// BADGES are the events that mark a student's tile until cleared: kind →
// [badge name, cleared by]. A violation's badge says its kind.
const BADGES = {
  violation: ['violation', null],
  media_stalled: ['stalled', 'media_resumed'],
  flag: ['flagged', null],
  disconnect: ['reconnecting', 'reconnect'],
};

/**
 * onAuditEvent shows one event: a badge on the student's tile (its
 * data-badges lists them, e.g. "violation:tab_hidden stalled") and a line
 * in the timeline.
 */
function onAuditEvent(e) {
  if (e.kind === 'talkback_stopped' && e.subject === talkingTo && e.actor === client?.self?.identity) {
    talkingTo = null; // ended by the server: the student left
    showTalking();
  }
  const tile = tiles.get(e.subject);
  if (tile) {
    const badges = new Set((tile.el.dataset.badges ?? '').split(' ').filter(Boolean));
    const badge = BADGES[e.kind];
    if (badge) badges.add(e.kind === 'violation' ? `violation:${e.details?.kind ?? ''}` : badge[0]);
    for (const [kind, [name, clearedBy]] of Object.entries(BADGES)) {
      if (clearedBy === e.kind) badges.delete(name);
    }
    // A required track (camera, microphone, screen) that stopped: marked
    // until the student publishes that source again.
    const source = e.details?.source;
    if (e.kind === 'track_unpublished' && e.details?.required && e.details?.reason === undefined) badges.add(`missing:${source}`);
    if (e.kind === 'track_published') badges.delete(`missing:${source}`);
    tile.el.dataset.badges = [...badges].join(' ');
    tile.el.title = [...badges].join(', ');
  }
  const line = document.createElement('li');
  const time = new Date(e.time ?? Date.now()).toLocaleTimeString();
  const what = e.details?.kind ?? e.details?.text ?? e.details?.reason ?? '';
  line.textContent = `${time} ${e.kind} ${e.subject ?? ''}${what ? `: ${what}` : ''}`;
  line.dataset.kind = e.kind;
  ui.timeline?.prepend(line);
  while (ui.timeline && ui.timeline.childElementCount > 200) ui.timeline.lastElementChild.remove();
}

/**
 * act carries out a tile's action button: a message shown to the student
 * until acknowledged, a flag on this moment, or ending the student's
 * session; each asks for its text and lands in the audit trail.
 */
function act(action, identity, label) {
  if (!client || client.state !== 'joined') return;
  switch (action) {
    case 'message': {
      const text = prompt(`Message to ${label}:`);
      if (text) client.sendMessage(identity, text);
      break;
    }
    case 'flag': {
      const text = prompt(`Flag ${label}: what did you see? (optional)`);
      if (text !== null) client.flag(identity, text);
      break;
    }
    case 'talk':
      toggleTalk(identity);
      break;
    case 'end': {
      const reason = prompt(`End ${label}'s exam session? The reason is shown to them:`);
      if (reason !== null) client.end(identity, reason);
      break;
    }
  }
}

// ---- talk-back -------------------------------------------------------------------

let talkingTo = null; // the identity this proctor talks to, or null

/**
 * toggleTalk starts talking to a student (only they hear the proctor's
 * microphone, and the proctor hears them: their tile is unmuted), turns to
 * another one, or stops. The tile's Talk button
 * shows who is spoken to (aria-pressed, data-talking on the tile).
 */
async function toggleTalk(identity) {
  const to = talkingTo === identity ? null : identity;
  try {
    if (to) await client.startTalkback(to);
    else client.stopTalkback();
  } catch (err) {
    console.warn(`[proctor] talk-back failed: ${err.code ?? ''} ${err.message}`);
    setStatus('warning', describeError(err.code ?? 'media_failed', err.message).title);
    return;
  }
  talkingTo = to;
  showTalking();
}

function showTalking() {
  for (const [id, tile] of tiles) {
    const on = id === talkingTo;
    tile.el.toggleAttribute('data-talking', on);
    // Tiles are muted; the student spoken to is heard, so they can answer.
    tile.video.muted = !on;
    const btn = tile.el.querySelector('[data-action="talk"]');
    if (btn) {
      btn.setAttribute('aria-pressed', String(on));
      btn.textContent = on ? 'Stop talking' : 'Talk';
    }
  }
}

// ---- tiles -------------------------------------------------------------------

function tileLabel(p) {
  return p.name && p.name !== p.identity ? `${p.name} (${p.identity})` : p.identity;
}

function ensureTile(p) {
  if (p.role && p.role !== 'student') return null;
  if (p.device) {
    // A student's additional device (a phone): its camera joins the
    // student's own tile, which exists already unless the phone came first.
    const tile = tiles.get(p.identity) ?? ensureTile(client.participants.get(p.identity) ??
      {identity: p.identity, sid: null, name: p.name, role: 'student', tracks: [], mediaTracks: new Map()});
    attachMedia(p.identity);
    return tile;
  }
  let tile = tiles.get(p.identity);
  if (tile && tile.sid !== p.sid) {
    // The student reconnected as a new session: start the tile afresh.
    removeTile(p.identity, {reconnect: true});
    tile = undefined;
  }
  if (!tile) {
    const el = ui.template.content.firstElementChild.cloneNode(true);
    el.dataset.identity = p.identity;
    tile = {
      el,
      video: el.querySelector('video'),
      name: el.querySelector('.tile-name'),
      state: el.querySelector('.tile-state'),
      sid: p.sid,
      seenVideo: false,
      extrasEl: el.querySelector('.tile-extras'),
      extras: new Map(), // track id → <video> of a screen share or a second device's camera
    };
    tile.video.muted = true;
    tile.video.addEventListener('playing', () => {
      tile.seenVideo = true;
      refreshTile(p.identity);
    });
    el.querySelector('.tile-actions')?.addEventListener('click', (ev) => {
      ev.stopPropagation(); // an action is not a focus click
      act(ev.target?.dataset?.action, p.identity, tileLabel(p));
    });
    el.addEventListener('click', () => toggleFocus(p.identity));
    el.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        toggleFocus(p.identity);
      }
    });
    tiles.set(p.identity, tile);
    insertSorted(el, p);
    intersections.observe(el);
    resizes.observe(el);
    updateCount();
    if (talkingTo === p.identity) showTalking(); // a reconnected student still spoken to
  }
  tile.name.textContent = tileLabel(p);
  tile.el.title = `${tileLabel(p)}: click to focus`;
  attachMedia(p.identity);
  refreshTile(p.identity);
  return tile;
}

function insertSorted(el, p) {
  const key = (p.name || p.identity).toLocaleLowerCase();
  for (const other of ui.grid.children) {
    const op = client.participants.get(other.dataset.identity);
    const okey = (op?.name || other.dataset.identity).toLocaleLowerCase();
    if (key.localeCompare(okey) < 0) {
      ui.grid.insertBefore(el, other);
      return;
    }
  }
  ui.grid.append(el);
}

function removeTile(identity, {reconnect = false} = {}) {
  const tile = tiles.get(identity);
  if (!tile) return;
  tile.video.srcObject = null;
  intersections.unobserve(tile.el);
  resizes.unobserve(tile.el);
  tile.el.remove();
  tiles.delete(identity);
  visible.delete(identity);
  // A reconnecting student keeps the talk-back (the server moves it to the
  // new session); one who left ends it.
  if (talkingTo === identity && !reconnect) talkingTo = null;
  scheduleView();
  if (focused === identity) setFocus(null);
  updateCount();
}

function updateCount() {
  const n = tiles.size;
  ui.count.textContent = `${n} student${n === 1 ? '' : 's'}`;
  ui.empty.hidden = n > 0;
}

/**
 * attachMedia puts a student's tracks in their tile: the main <video> shows
 * the camera of the student's main device (and carries their audio); every
 * other video (a screen share, a second device's camera) gets a small
 * <video> of its own in the tile, labelled by data-source (screen, camera)
 * and data-device. A track's source comes from its announcement, which may
 * follow the track: this runs again then.
 */
function attachMedia(identity) {
  const tile = tiles.get(identity);
  if (!tile) return;
  // The student's sessions: the main device and any others (device set).
  const sessions = [...client.participants.values()].filter((q) => q.identity === identity && q.role !== 'proctor');
  const infos = new Map(); // track id → {source, device}
  for (const q of sessions) for (const t of q.tracks) infos.set(t.trackId, {...t, device: q.device ?? ''});
  const info = (track) => infos.get(track.id);
  const live = sessions.flatMap((q) => [...q.mediaTracks.values()]).filter((t) => t.readyState === 'live');
  const isMain = (t) => t.kind === 'audio' || ((info(t)?.source ?? 'camera') === 'camera' && !info(t)?.device);
  const main = live.filter(isMain);
  // One camera in the main video: the first, if a second slipped in unannounced.
  const mainVideo = main.find((t) => t.kind === 'video');
  setTracks(tile.video, main.filter((t) => t.kind === 'audio' || t === mainVideo));
  const extras = live.filter((t) => t.kind === 'video' && t !== mainVideo);
  for (const [id, el] of tile.extras) {
    if (!extras.some((t) => t.id === id)) {
      el.srcObject = null;
      el.remove();
      tile.extras.delete(id);
    }
  }
  for (const t of extras) {
    let el = tile.extras.get(t.id);
    if (!el) {
      el = document.createElement('video');
      el.autoplay = true;
      el.muted = true;
      el.playsInline = true;
      tile.extrasEl.append(el);
      tile.extras.set(t.id, el);
    }
    el.dataset.source = info(t)?.source ?? 'camera';
    el.dataset.device = info(t)?.device ?? '';
    el.title = info(t)?.device ? `${info(t).device} camera` : el.dataset.source;
    setTracks(el, [t]);
  }
  tile.el.dataset.extras = [...tile.extras.values()].map((el) => el.dataset.device || el.dataset.source).join(' ');
}

/** setTracks shows exactly tracks in a media element. */
function setTracks(el, tracks) {
  const now = el.srcObject?.getTracks() ?? [];
  if (now.length === tracks.length && tracks.every((t) => now.includes(t))) return;
  el.srcObject = tracks.length ? new MediaStream(tracks) : null;
  if (tracks.length) el.play().catch(() => {}); // autoplay of muted video is allowed; play() only nudges it
}

function watchTrack(identity, track) {
  const refresh = () => refreshTile(identity);
  track.addEventListener('mute', refresh);
  track.addEventListener('unmute', refresh);
  track.addEventListener('ended', refresh);
}

/** refreshTile derives a tile's data-state and label from the participant's media. */
function refreshTile(identity) {
  const tile = tiles.get(identity);
  const p = client.participants.get(identity);
  if (!tile || !p || client.state === 'closed') return;
  const video = [...p.mediaTracks.values()].find((t) => t.kind === 'video' && t.readyState === 'live');
  const published = p.tracks.some((t) => t.kind === 'video');
  let state;
  let text;
  if (video && !video.muted) {
    [state, text] = ['live', 'Live'];
  } else if (video && tile.seenVideo) {
    [state, text] = ['stalled', 'Video interrupted'];
  } else if (video || published) {
    [state, text] = ['connecting', 'Connecting video…'];
  } else {
    [state, text] = ['waiting', 'Camera not shared yet'];
  }
  tile.el.dataset.state = state;
  tile.state.textContent = text;
}

// ---- wiring ------------------------------------------------------------------

function wire(c) {
  c.addEventListener(ClientEvent.Joined, ({detail}) => {
    ui.roomName.textContent = detail.room ?? '';
    document.title = `Invigil · Proctor · ${detail.room ?? ''}`;
    for (const p of c.participants.values()) ensureTile(p);
  });
  c.addEventListener(ClientEvent.ParticipantJoined, ({detail}) => ensureTile(detail.participant));
  c.addEventListener(ClientEvent.ParticipantLeft, ({detail}) => {
    const {identity, sid, device} = detail.participant;
    const tile = tiles.get(identity);
    if (device) {
      // A second device left: its camera leaves the tile, the student stays
      // (unless the tile was only ever the phone's).
      if (tile && !client.participants.get(identity)) removeTile(identity);
      else attachMedia(identity);
      return;
    }
    if (tile && (!sid || tile.sid === sid)) removeTile(identity);
  });
  c.addEventListener(ClientEvent.TrackPublished, ({detail}) => {
    if (detail.participant) ensureTile(detail.participant);
  });
  c.addEventListener(ClientEvent.TrackUnpublished, ({detail}) => {
    if (!detail.participant) return;
    attachMedia(detail.participant.identity);
    refreshTile(detail.participant.identity);
  });
  c.addEventListener(ClientEvent.Track, ({detail}) => {
    if (!detail.participant) {
      console.warn(`[proctor] track ${detail.track.id} from an unknown publisher`);
      return;
    }
    watchTrack(detail.identity, detail.track);
    detail.track.addEventListener('ended', () => attachMedia(detail.identity));
    ensureTile(detail.participant);
    refreshTile(detail.identity);
  });
  c.addEventListener(ClientEvent.ConnectionStateChange, ({detail}) => {
    if (failed) return;
    const states = {
      connected: ['live', 'Connected'],
      connecting: ['connecting', 'Connecting media…'],
      disconnected: ['warning', 'Connection unstable…'],
      failed: ['error', 'Media connection failed'],
    };
    const [state, text] = states[detail.state] ?? ['connecting', detail.state];
    setStatus(state, text);
    if (detail.state === 'failed') fail(describeError('connection_lost'));
  });
  c.addEventListener(ClientEvent.Error, ({detail}) => {
    if (detail.fatal || detail.code === 'negotiation_failed') fail(describeError(detail.code, detail.message));
  });
  c.addEventListener(ClientEvent.AuditEvent, ({detail}) => onAuditEvent(detail));
  c.addEventListener(ClientEvent.Closed, ({detail}) => {
    for (const tile of tiles.values()) {
      tile.el.dataset.state = 'offline';
      tile.state.textContent = 'Not connected';
    }
    const wait = rejoinAfter(detail, attempt);
    if (wait >= 0) {
      attempt++;
      setStatus('connecting', `Connection lost; reconnecting (attempt ${attempt})…`);
      setTimeout(main, wait);
      return;
    }
    if (detail.initiator !== 'client') fail(describeClose(detail));
  });
}

// attempt counts rejoins since the last session that got going.
let attempt = 0;

async function main() {
  failed = false;
  updateCount();
  const token = tokenFromLocation();
  if (!token) {
    fail(describeError('token_missing'));
    return;
  }
  client = new InvigilClient({token, logger: console});
  window.invigilClient = client;
  wire(client);
  setStatus('connecting', 'Joining…');
  try {
    await client.connect();
  } catch (err) {
    fail(describeError(err.code ?? 'connection_failed', err.message));
    return;
  }
  attempt = 0;
  if (!failed) setStatus('connecting', 'Waiting for students…');
}

main();
