// focus_tile.js clicks the proctor tile of IDENTITY and reports which tiles
// are focused afterwards. The Go test replaces IDENTITY with a JSON string.
(() => {
  const tile = document.querySelector(`[data-identity=${CSS.escape(IDENTITY)}]`);
  if (!tile) return {clicked: false, focused: [], gridFocus: false};
  tile.click();
  return {
    clicked: true,
    focused: [...document.querySelectorAll('[data-identity].is-focused')].map((el) => el.dataset.identity),
    pressed: tile.getAttribute('aria-pressed'),
    width: tile.getBoundingClientRect().width,
  };
})()
