// error_view.js reads the student page's error box and status bar.
(() => {
  const box = document.getElementById('error');
  return {
    visible: Boolean(box && !box.hidden),
    code: document.getElementById('error-code')?.textContent ?? '',
    title: document.getElementById('error-title')?.textContent ?? '',
    status: document.getElementById('status')?.textContent ?? '',
  };
})()
