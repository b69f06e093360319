// console_warnings.js is an init script: it runs before a page's own
// scripts and keeps every console.warn line in window.__warnings (still
// printing it), so a test sees the SDK's warnings from the page's start.
(() => {
  const warnings = [];
  Object.defineProperty(window, '__warnings', {value: warnings});
  const warn = console.warn;
  console.warn = (...args) => {
    warnings.push(args.map(String).join(' '));
    warn.apply(console, args);
  };
})();
