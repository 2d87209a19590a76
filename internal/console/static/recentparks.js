// Recent parks panel of the front desk: reloads GET /api/v1/history each
// time the lamp wall is redrawn (frontdesk.js redraws it on every park
// event), so the panel needs no stream of its own.
'use strict';
(() => {
  const list = document.getElementById('recent-list');
  const board = document.getElementById('board');
  if (!list || !board) return;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const when = iso => {
    const d = new Date(iso), now = new Date();
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
    return d.toDateString() === now.toDateString() ? hm : d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' }) + ' ' + hm;
  };
  let pending = null;
  async function refresh() {
    try {
      const r = await fetch('/api/v1/history?limit=8', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      if (!r.ok) return;
      const { parks } = await r.json();
      const frag = document.createDocumentFragment();
      for (const p of parks) {
        const li = el('li', 'recent tone-' + p.tone);
        li.dataset.slot = p.slot;
        li.dataset.outcome = p.outcome || '';
        const body = el('div', 'recent-body');
        body.append(el('div', 'recent-caller', p.caller_name || p.caller_number || 'Unknown caller'), el('div', 'recent-outcome', p.summary));
        const t = el('time', 'recent-time', when(p.parked));
        t.dateTime = p.parked;
        li.append(el('span', 'recent-slot', p.slot), body, t);
        frag.append(li);
      }
      if (!parks.length) frag.append(el('li', 'empty', 'No parks yet. Each park shows here with how it ended.'));
      list.replaceChildren(frag);
    } catch (e) { /* the board shows the connection state */ }
  }
  // Coalesce bursts of redraws (park + page events) into one fetch.
  new MutationObserver(() => {
    clearTimeout(pending);
    pending = setTimeout(refresh, 150);
  }).observe(board, { childList: true });
  setInterval(refresh, 20000); // waits count up in the summaries
})();
