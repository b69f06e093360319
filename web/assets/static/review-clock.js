// One clock for every recorded track of a session: the camera (with its
// microphone), the screen and a second device's camera play side by side,
// each at the position of the session's clock, whichever segment file
// holds that instant. A track with no recording at an instant (before it
// started, after it ended, a gap) shows so instead of a frozen picture.
//
// Positions are milliseconds from the session's start. A segment's file
// starts at the segment's start: its media time t is the session's
// instant start + t, gaps inside it included (the recorder keeps wall
// time across a gap).

// drift is how far (s) a video may run from the clock before it is put
// back: a seek costs a decode from the previous keyframe, so small
// differences are left alone.
const drift = 0.35;

/** Track is one recorded track of a session on the clock. */
export class Track {
  /**
   * @param {string} label camera, screen or phone
   * @param {Array<{name: string, start: number, end: number}>} segments positions in ms, sorted
   * @param {Array<{from: number, to: number, reason: string}>} gaps positions in ms
   * @param {(name: string) => Promise<string>} open resolves a segment's name to a playable URL
   */
  constructor(label, segments, gaps, open) {
    this.label = label;
    this.segments = segments;
    this.gaps = gaps;
    this.open = open;
    this.video = null;
    this.figure = null;
    this.loaded = null; // name of the segment the video holds
    this.loading = null;
  }

  /** segmentAt is the segment that holds position p, or null. */
  segmentAt(p) {
    return this.segments.find((s) => p >= s.start && p < s.end) ?? null;
  }

  /** gapAt is the recorded gap at position p, or null. */
  gapAt(p) {
    return this.gaps.find((g) => p >= g.from && p < g.to) ?? null;
  }

  setState(state) {
    if (this.figure && this.figure.dataset.state !== state) this.figure.dataset.state = state;
  }

  /** follow puts the video at position p of the clock, playing or not. */
  follow(p, playing) {
    const seg = this.segmentAt(p);
    if (!seg || this.gapAt(p)) {
      if (!this.video.paused) this.video.pause();
      const first = this.segments[0];
      this.setState(!seg && (!first || p < first.start) ? 'before' : !seg && p >= this.segments.at(-1).end ? 'after' : 'gap');
      return;
    }
    if (this.loaded !== seg.name) {
      this.load(seg);
      return;
    }
    if (this.video.readyState < 1) return; // metadata not yet there
    const want = (p - seg.start) / 1000;
    if (!this.video.seeking && Math.abs(this.video.currentTime - want) > drift) this.video.currentTime = want;
    if (playing && this.video.paused) this.video.play().catch(() => {});
    if (!playing && !this.video.paused) this.video.pause();
    this.setState(playing ? 'playing' : 'paused');
  }

  load(seg) {
    if (this.loading === seg.name) return;
    this.loading = seg.name;
    this.setState('loading');
    this.open(seg.name).then((url) => {
      if (this.loading !== seg.name) return; // the clock moved on
      this.video.src = url;
      // Where the file sits on the session's clock, for scripts that
      // read a video's position (currentTime + segment start).
      this.video.dataset.file = seg.name;
      this.video.dataset.segmentStart = String(seg.start);
      this.loaded = seg.name;
      this.loading = null;
    }, (err) => {
      this.loading = null;
      this.setState('error');
      if (this.figure) this.figure.querySelector('figcaption').textContent = `${this.label}: ${err.message}`;
    });
  }
}

/** Clock drives every Track of a session from one position. */
export class Clock {
  /**
   * @param {Track[]} tracks
   * @param {number} length the session's length in ms
   * @param {(p: number) => void} onTick called with the position on every frame
   */
  constructor(tracks, length, onTick) {
    this.tracks = tracks;
    this.length = length;
    this.onTick = onTick;
    this.position = 0;
    this.playing = false;
    this.startedAt = 0; // performance.now() when position was last set while playing
    this.startedFrom = 0;
    this.frame = 0;
  }

  now() {
    if (!this.playing) return this.position;
    return Math.min(this.length, this.startedFrom + (performance.now() - this.startedAt));
  }

  play() {
    if (this.position >= this.length) this.position = 0;
    this.startedFrom = this.position;
    this.startedAt = performance.now();
    this.playing = true;
    this.run();
  }

  pause() {
    this.position = this.now();
    this.playing = false;
  }

  /** seek moves every track to position p (ms from the session's start). */
  seek(p) {
    this.position = Math.max(0, Math.min(this.length, p));
    this.startedFrom = this.position;
    this.startedAt = performance.now();
    for (const t of this.tracks) {
      const seg = t.segmentAt(this.position);
      if (seg && t.loaded === seg.name && t.video.readyState >= 1) t.video.currentTime = (this.position - seg.start) / 1000;
    }
    this.run();
  }

  run() {
    if (this.frame) return;
    const step = () => {
      this.frame = 0;
      const p = this.now();
      if (this.playing && p >= this.length) this.pause();
      for (const t of this.tracks) t.follow(p, this.playing);
      this.onTick(p);
      // Keep stepping while playing, or while a track still loads the
      // segment a seek asked for.
      if (this.playing || this.tracks.some((t) => t.loading || (t.segmentAt(p) && t.loaded !== t.segmentAt(p).name) || t.video.readyState < 1 && t.loaded)) {
        this.frame = requestAnimationFrame(step);
      }
    };
    this.frame = requestAnimationFrame(step);
  }

  stop() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.playing = false;
    for (const t of this.tracks) t.video?.pause();
  }
}
