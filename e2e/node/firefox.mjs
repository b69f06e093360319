// firefox.mjs drives one headless Firefox ESR for Invigil's e2e tests, so a
// Go test can use Firefox the way it uses Chromium through chromedp: it
// opens pages, evaluates scripts in them and screenshots them. puppeteer-core
// speaks WebDriver BiDi to Firefox itself (no geckodriver, no downloaded
// browser).
//
//   node firefox.mjs --executable /usr/bin/firefox-esr --profile DIR [--media-origin ORIGIN]...
//
// DIR is a fresh profile directory the test owns; the prefs below are
// written into it. Each ORIGIN (e.g. http://127.0.0.1:40123) is given a
// remembered camera and microphone permission, as a user who ticked
// "remember this decision" has: Firefox gathers host candidates other than
// the default route's address (so 127.0.0.1) only for a page that captures
// or holds such a permission, and a proctor's page captures nothing.
//
// The protocol is one JSON object per line. The script first writes
// {"ready": {"pid": FIREFOX_PID, "version": "..."}} on stdout, then answers
// each request read on stdin with {"id": ID, "result": VALUE} or
// {"id": ID, "error": "MESSAGE"}, one request at a time, in order:
//
//   {"id": 1, "op": "open", "page": "p", "url": "..."}
//       opens a tab named p and waits for its page to load.
//   {"id": 2, "op": "eval", "page": "p", "script": "...", "timeoutMs": 5000}
//       evaluates an expression (awaiting a promise) and returns its JSON value.
//   {"id": 3, "op": "screenshot", "page": "p", "path": "/tmp/p.png"}
//
// Console messages, page errors and Firefox's own output go to stderr, one
// line each. On stdin's end, SIGTERM or SIGINT the browser is closed and the
// script exits, so the test stops everything by stopping this process.
import {writeFile} from 'node:fs/promises';
import {join} from 'node:path';
import {createInterface} from 'node:readline';
import {pathToFileURL} from 'node:url';
import {parseArgs} from 'node:util';
import puppeteer from 'puppeteer-core';

// prefs give Firefox a fake camera and microphone with no permission prompt,
// let media play without a gesture, and let ICE use the loopback address a
// test's node advertises (without it Firefox drops 127.0.0.1 candidates).
// permission.fake makes a page capturing the fake camera count as capturing
// for ICE (else Firefox offers only its default address, never loopback).
const prefs = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.navigator.permission.fake': true,
  'media.autoplay.default': 0,
  'media.peerconnection.ice.loopback': true,
};

// launchTimeoutMs bounds Firefox's start-up; a cold profile takes seconds.
const launchTimeoutMs = 60_000;
// closeTimeoutMs bounds browser.close() before the process is killed.
const closeTimeoutMs = 10_000;

const {values: opts} = parseArgs({
  options: {
    'executable': {type: 'string'},
    'profile': {type: 'string'},
    'media-origin': {type: 'string', multiple: true, default: []},
  },
});
if (!opts.executable || !opts.profile) {
  process.stderr.write('usage: node firefox.mjs --executable PATH --profile DIR [--media-origin ORIGIN]...\n');
  process.exit(2);
}

// Remembered permissions come from a defaults file Firefox reads at start-up
// (one "origin TYPE 1 ORIGIN" line per permission, tab-separated).
if (opts['media-origin'].length > 0) {
  const file = join(opts.profile, 'invigil-permissions');
  const lines = opts['media-origin'].flatMap((o) => ['camera', 'microphone'].map((p) => `origin\t${p}\t1\t${o}\n`));
  await writeFile(file, lines.join(''));
  prefs['permissions.manager.defaultsUrl'] = pathToFileURL(file).href;
}

const log = (line) => process.stderr.write(`${line}\n`);
const send = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const browser = await puppeteer.launch({
  browser: 'firefox',
  executablePath: opts.executable,
  userDataDir: opts.profile,
  headless: true,
  extraPrefsFirefox: prefs,
  timeout: launchTimeoutMs,
  protocolTimeout: launchTimeoutMs,
});
const proc = browser.process();
proc?.stderr?.on('data', (chunk) => process.stderr.write(chunk));
proc?.stdout?.on('data', (chunk) => process.stderr.write(chunk));

// closing is set once shutdown has begun; it runs at most once.
let closing = null;
const shutdown = (why) => {
  closing ??= (async () => {
    log(`firefox.mjs: closing the browser (${why})`);
    const timer = setTimeout(() => {
      log('firefox.mjs: browser.close() timed out; killing Firefox');
      proc?.kill('SIGKILL');
      process.exit(1);
    }, closeTimeoutMs);
    try {
      await browser.close();
    } catch (err) {
      log(`firefox.mjs: browser.close(): ${err.message}`);
      proc?.kill('SIGKILL');
    }
    clearTimeout(timer);
    process.exit(0);
  })();
  return closing;
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
browser.on('disconnected', () => {
  if (!closing) {
    log('firefox.mjs: Firefox disconnected');
    process.exit(1);
  }
});

// pages maps a tab's name → its puppeteer Page.
const pages = new Map();

const page = (name) => {
  const p = pages.get(name);
  if (!p) throw new Error(`no page named ${JSON.stringify(name)}`);
  return p;
};

// wrap turns an expression into one that resolves to its JSON text, so the
// value crosses BiDi as a plain string and arrives as the page's own JSON.
const wrap = (script) => `(async () => JSON.stringify(await (\n${script}\n)) ?? 'null')()`;

const ops = {
  async open({page: name, url}) {
    if (pages.has(name)) throw new Error(`page ${name} is already open`);
    const p = await browser.newPage();
    pages.set(name, p);
    p.on('console', (m) => log(`[${name}] console.${m.type()}: ${m.text()}`));
    p.on('pageerror', (err) => log(`[${name}] page error: ${err.message}`));
    await p.goto(url, {waitUntil: 'load'});
    return null;
  },
  async eval({page: name, script, timeoutMs = 5000}) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`evaluation timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return JSON.parse(await Promise.race([page(name).evaluate(wrap(script)), timeout]));
    } finally {
      clearTimeout(timer);
    }
  },
  async screenshot({page: name, path}) {
    await page(name).screenshot({path});
    return null;
  },
};

send({ready: {pid: proc?.pid ?? 0, version: await browser.version()}});

// serve answers one request line.
const serve = async (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch (err) {
    log(`firefox.mjs: bad request line ${JSON.stringify(line)}: ${err.message}`);
    return;
  }
  try {
    const op = ops[req.op];
    if (!op) throw new Error(`unknown op ${JSON.stringify(req.op)}`);
    send({id: req.id, result: await op(req)});
  } catch (err) {
    send({id: req.id, error: String(err?.message ?? err)});
  }
};

for await (const line of createInterface({input: process.stdin})) {
  await serve(line);
}
await shutdown('stdin closed');
