// conceal_probe.js runs before the student page's scripts in the
// conceal-focus test: it records every signaling message the page's
// WebSocket receives (its type and when), so the test can tell whether
// any reached the student when a proctor focused it.
(() => {
  const Native = window.WebSocket;
  window.__invigilInbound = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (ev) => {
        let type = '?';
        try { type = JSON.parse(ev.data).type ?? '?'; } catch (e) { type = 'unparsed'; }
        window.__invigilInbound.push({t: Date.now(), type});
      });
    }
  };
})();
