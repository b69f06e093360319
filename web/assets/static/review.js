// The review page: a room's recorded sessions, and for one session every
// recorded track side by side on one clock (review-clock.js) with the
// session's audit trail as a timeline under them. Clicking an event seeks
// every video to that instant; gaps are drawn as gaps; the manifest's
// signature and files are checked here against the published keys
// (review-verify.js).
//
// The token (reviewer or admin) comes in the fragment, #token=…; a token
// for every room also names the room: #token=…&room=R.
//
// DOM hooks (stable, see docs/recording.md): each session is an element
// with data-session="<session id>"; each of its videos has
// data-track="camera", "screen" or "phone"; each timeline entry has
// data-seq="<event seq>".

import {tokenClaims, tokenFromLocation} from '../sdk/invigil.js';
import {Clock, Track} from './review-clock.js';
import {checkFile, verifySignature} from './review-verify.js';

const $ = (id) => document.getElementById(id);
const ui = {
  roomName: $('room-name'), count: $('session-count'), status: $('status'), sessions: $('sessions'), empty: $('empty'),
  error: $('error'), errorTitle: $('error-title'), errorDetail: $('error-detail'), errorCode: $('error-code'),
  sessionTemplate: $('session-template'), playerTemplate: $('player-template'),
};

// Event kinds that belong on a session's timeline (the rest, e.g.
// track_published, are bookkeeping a reviewer does not judge by).
const timelineKinds = new Set(['join', 'leave', 'disconnect', 'reconnect', 'admitted', 'violation', 'flag', 'note', 'message', 'message_ack',
  'talkback_started', 'talkback_stopped', 'media_stalled', 'media_resumed', 'media_degraded', 'recording_started', 'recording_stopped',
  'recording_gap', 'ended', 'forbidden', 'revoked', 'admin_action', 'room_closed']);

const token = tokenFromLocation();
const claims = token ? tokenClaims(token) : null;
const roomName = new URLSearchParams(location.hash.slice(1)).get('room') || (claims?.room !== '*' ? claims?.room : '');

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, as = 'json') {
  const resp = await fetch(path, {headers: {Authorization: `Bearer ${token}`}, cache: 'no-store'});
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    throw new APIError(resp.status, body.code ?? `http_${resp.status}`, body.message ?? resp.statusText);
  }
  return as === 'json' ? resp.json() : as === 'text' ? resp.text() : resp.arrayBuffer();
}

function fail(title, err) {
  ui.error.hidden = false;
  ui.errorTitle.textContent = title;
  ui.errorDetail.textContent = err.message ?? String(err);
  ui.errorCode.textContent = err.code ?? 'client';
  ui.status.dataset.state = 'error';
  ui.status.textContent = 'Error';
}

const ms = (t) => new Date(t).getTime();
const clockText = (p) => {
  const s = Math.max(0, Math.floor(p / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

/**
 * sessionsOf groups a room's manifests into sessions: a student's
 * session (identity without "@") with the manifests of its second
 * devices (identity@device) that overlap it in time.
 */
export function sessionsOf(manifests) {
  const primaries = manifests.filter((m) => !m.identity.includes('@'));
  const sessions = primaries.map((m) => ({id: m.session, identity: m.identity, manifests: [m]}));
  for (const m of manifests.filter((x) => x.identity.includes('@'))) {
    const base = m.identity.split('@')[0];
    const end = (x) => (x.ended ? ms(x.ended) : Date.now());
    const host = sessions.find((s) => s.identity === base && ms(m.started) < end(s.manifests[0]) && end(m) > ms(s.manifests[0].started));
    if (host) host.manifests.push(m);
    else sessions.push({id: m.session, identity: m.identity, manifests: [m]});
  }
  for (const s of sessions) {
    s.start = Math.min(...s.manifests.map((m) => ms(m.started)));
    s.end = Math.max(...s.manifests.map((m) => (m.ended ? ms(m.ended) : Math.max(ms(m.started), ...m.files.map((f) => ms(f.end))))));
  }
  return sessions.sort((a, b) => a.start - b.start || a.identity.localeCompare(b.identity));
}

/** tracksOf is the session's tracks: one per source of each manifest, positions from the session's start. */
function tracksOf(session, open) {
  const tracks = [];
  for (const m of session.manifests) {
    const device = m.identity.includes('@');
    for (const source of [...new Set(m.files.map((f) => f.source))]) {
      const label = device ? (source === 'camera' ? 'phone' : `phone-${source}`) : source;
      const segments = m.files.filter((f) => f.source === source)
        .map((f) => ({name: f.name, start: ms(f.start) - session.start, end: ms(f.end) - session.start, entry: f, manifest: m}))
        .sort((a, b) => a.start - b.start);
      const gaps = (m.gaps ?? []).filter((g) => g.source === source || (source === 'camera' && g.source === 'microphone'))
        .map((g) => ({from: ms(g.from) - session.start, to: ms(g.to) - session.start, reason: g.reason}));
      tracks.push(new Track(label, segments, gaps, (name) => open(m, name)));
    }
  }
  const order = {camera: 0, screen: 1, phone: 2};
  return tracks.sort((a, b) => (order[a.label] ?? 9) - (order[b.label] ?? 9));
}

function pct(p, length) {
  return `${(100 * Math.max(0, Math.min(length, p)) / length).toFixed(3)}%`;
}

/** drawBars draws each track's segments and gaps on the session's clock, and the events as marks. */
function drawBars(el, tracks, length, events, seek) {
  el.replaceChildren();
  for (const t of tracks) {
    const row = document.createElement('div');
    row.className = 'bar-row';
    row.dataset.source = t.label;
    const label = document.createElement('span');
    label.className = 'bar-label';
    label.textContent = t.label;
    const lane = document.createElement('div');
    lane.className = 'lane';
    for (const s of t.segments) {
      const d = document.createElement('div');
      d.className = 'seg';
      d.style.left = pct(s.start, length);
      d.style.width = pct(s.end - s.start, length);
      d.title = s.name;
      lane.append(d);
    }
    // Holes between segments are gaps too (a file ended, the next began later).
    const holes = [];
    for (let i = 1; i < t.segments.length; i++) {
      if (t.segments[i].start - t.segments[i - 1].end > 500) holes.push({from: t.segments[i - 1].end, to: t.segments[i].start, reason: 'no_file'});
    }
    for (const g of [...t.gaps, ...holes]) {
      const d = document.createElement('div');
      d.className = 'gap';
      d.dataset.source = t.label;
      d.dataset.reason = g.reason;
      d.style.left = pct(g.from, length);
      d.style.width = pct(Math.max(g.to - g.from, length / 400), length);
      d.title = `gap: ${g.reason} (${clockText(g.from)}–${clockText(g.to)})`;
      lane.append(d);
    }
    lane.addEventListener('click', (e) => {
      const r = lane.getBoundingClientRect();
      seek(((e.clientX - r.left) / r.width) * length);
    });
    row.append(label, lane);
    el.append(row);
  }
  const marks = document.createElement('div');
  marks.className = 'bar-row marks';
  const lane = document.createElement('div');
  lane.className = 'lane';
  for (const e of events) {
    const d = document.createElement('div');
    d.className = 'mark';
    d.dataset.kind = e.kind;
    d.style.left = pct(e.offset, length);
    d.title = `${e.kind} at ${clockText(e.offset)}`;
    lane.append(d);
  }
  const head = document.createElement('div');
  head.className = 'playhead';
  lane.append(head);
  const spacer = document.createElement('span');
  spacer.className = 'bar-label';
  marks.append(spacer, lane);
  el.append(marks);
  return head;
}

function describe(e) {
  const d = e.details ?? {};
  const parts = [];
  if (e.actor && e.actor !== e.subject) parts.push(`by ${e.actor}`);
  for (const k of ['reason', 'text', 'source', 'rule', 'bitrate_kbps', 'device']) if (d[k] !== undefined) parts.push(`${k}: ${d[k]}`);
  return parts.join(', ');
}

async function verify(session, el) {
  el.dataset.verified = 'pending';
  el.textContent = 'Checking…';
  try {
    const keys = await fetch('/v1/recordings/keys', {cache: 'no-store'}).then((r) => r.json());
    const problems = [];
    const signers = new Set();
    for (const m of session.manifests) {
      const raw = await api(fileURL(m, `${m.session}.manifest.json`), 'text');
      const sig = await verifySignature(raw, keys);
      if (!sig.ok) problems.push(`${m.identity}: ${sig.problem}`);
      else signers.add(sig.keyID);
      for (const f of m.files) {
        const p = await checkFile(f, await bytesOf(m, f.name));
        if (p) problems.push(p);
      }
    }
    const files = session.manifests.reduce((n, m) => n + m.files.length, 0);
    el.dataset.verified = problems.length ? 'failed' : 'ok';
    el.textContent = problems.length ? `Altered or unverifiable: ${problems.join('; ')}` : `Signed by key ${[...signers].join(', ')}; ${files} file${files === 1 ? '' : 's'} intact`;
    el.title = el.textContent;
  } catch (err) {
    el.dataset.verified = 'failed';
    el.textContent = `Could not check: ${err.message}`;
  }
}

const fileURL = (m, name) => `/v1/rooms/${encodeURIComponent(m.room)}/recordings/${encodeURIComponent(m.session)}/${encodeURIComponent(name)}`;

// Files are fetched with the token in a header (never in a URL), once,
// and played from memory; the same bytes are what the check hashes.
const fetched = new Map();
function bytesOf(m, name) {
  const key = `${m.session}/${name}`;
  if (!fetched.has(key)) fetched.set(key, api(fileURL(m, name), 'bytes'));
  return fetched.get(key);
}
const urls = new Map();
function playable(m, name) {
  const key = `${m.session}/${name}`;
  if (!urls.has(key)) {
    const type = m.files.find((f) => f.name === name)?.type || 'video/webm';
    urls.set(key, bytesOf(m, name).then((b) => URL.createObjectURL(new Blob([b], {type}))));
  }
  return urls.get(key);
}

let current = null; // the open session: {el, clock}

function open(session, el, events) {
  if (current?.el === el) return;
  if (current) close(current);
  const body = el.querySelector('.session-body');
  body.hidden = false;
  el.dataset.open = 'true';
  el.querySelector('.session-head').setAttribute('aria-expanded', 'true');
  const length = Math.max(1000, session.end - session.start);
  const tracks = tracksOf(session, playable);
  const players = el.querySelector('.players');
  players.replaceChildren();
  for (const t of tracks) {
    const fig = ui.playerTemplate.content.firstElementChild.cloneNode(true);
    t.figure = fig;
    t.video = fig.querySelector('video');
    t.video.dataset.track = t.label;
    fig.dataset.track = t.label;
    fig.querySelector('figcaption').textContent = t.label;
    players.append(fig);
  }
  const mine = events.filter((e) => (e.subject === session.identity || e.actor === session.identity || e.subject?.startsWith(session.identity + '@')) &&
    timelineKinds.has(e.kind) && ms(e.time) >= session.start - 5000 && ms(e.time) <= session.end + 5000)
    .map((e) => ({...e, offset: ms(e.time) - session.start}));
  const clockEl = el.querySelector('.clock');
  const playBtn = el.querySelector('.play');
  let clock;
  const head = drawBars(el.querySelector('.bars'), tracks, length, mine, (p) => clock.seek(p));
  clock = new Clock(tracks, length, (p) => {
    head.style.left = pct(p, length);
    clockEl.textContent = `${clockText(p)} / ${clockText(length)}`;
    el.dataset.position = String(Math.round(p));
    playBtn.textContent = clock.playing ? 'Pause' : 'Play';
  });
  playBtn.onclick = () => (clock.playing ? clock.pause() : clock.play());
  const sound = el.querySelector('.sound');
  sound.onclick = () => {
    const on = sound.getAttribute('aria-pressed') !== 'true';
    sound.setAttribute('aria-pressed', String(on));
    sound.textContent = on ? 'Sound on' : 'Sound off';
    for (const t of tracks) t.video.muted = !(on && t.label === 'camera');
  };
  const list = el.querySelector('.events');
  list.replaceChildren();
  for (const e of mine) {
    const li = document.createElement('li');
    li.dataset.seq = String(e.seq);
    li.dataset.kind = e.kind;
    li.dataset.offsetMs = String(Math.round(e.offset));
    li.tabIndex = 0;
    const at = document.createElement('time');
    at.dateTime = e.time;
    at.textContent = clockText(e.offset);
    const kind = document.createElement('strong');
    kind.textContent = e.kind.replace(/_/g, ' ');
    const what = document.createElement('span');
    what.textContent = describe(e);
    li.append(at, kind, what);
    const go = () => clock.seek(e.offset);
    li.addEventListener('click', go);
    li.addEventListener('keydown', (k) => (k.key === 'Enter' || k.key === ' ') && go());
    list.append(li);
  }
  current = {el, clock, session};
  el.reviewClock = clock; // for scripts that embed the page
  clock.seek(0);
  verify(session, el.querySelector('.session-verify'));
}

function close(c) {
  c.clock.stop();
  c.el.dataset.open = 'false';
  c.el.querySelector('.session-body').hidden = true;
  c.el.querySelector('.session-head').setAttribute('aria-expanded', 'false');
  current = null;
}

async function main() {
  if (!token) return fail('No token', {message: 'Open this page with #token=<a reviewer or admin token> in the address.', code: 'token_missing'});
  if (!roomName) return fail('No room', {message: 'This token is for every room: add &room=<room> to the address.', code: 'malformed'});
  ui.roomName.textContent = roomName;
  let manifests, events;
  try {
    [{recordings: manifests}, {events}] = await Promise.all([
      api(`/v1/rooms/${encodeURIComponent(roomName)}/recordings`),
      api(`/v1/rooms/${encodeURIComponent(roomName)}/events`),
    ]);
  } catch (err) {
    return fail(err.status === 403 ? 'Not allowed' : err.status === 401 ? 'Token refused' : 'Could not load the room', err);
  }
  const sessions = sessionsOf(manifests);
  ui.count.textContent = `${sessions.length} session${sessions.length === 1 ? '' : 's'}`;
  ui.empty.hidden = sessions.length > 0;
  for (const s of sessions) {
    const el = ui.sessionTemplate.content.firstElementChild.cloneNode(true);
    el.dataset.session = s.id;
    el.dataset.identity = s.identity;
    el.querySelector('.session-who').textContent = s.identity;
    el.querySelector('.session-when').textContent = `${new Date(s.start).toLocaleString()} · ${clockText(s.end - s.start)}`;
    el.querySelector('.session-head').addEventListener('click', () => (current?.el === el ? close(current) : open(s, el, events)));
    ui.sessions.append(el);
  }
  ui.status.dataset.state = 'ready';
  ui.status.textContent = 'Ready';
  const wanted = new URLSearchParams(location.hash.slice(1)).get('session');
  const first = wanted ? sessions.find((s) => s.id === wanted) : sessions.length === 1 ? sessions[0] : null;
  if (first) open(first, ui.sessions.querySelector(`[data-session="${CSS.escape(first.id)}"]`), events);
}

main();
