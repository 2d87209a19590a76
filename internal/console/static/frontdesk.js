// Front desk: the lamp wall, live. The page arrives rendered; this script
// keeps it current. Every park event on the SSE stream (and every
// (re)connect) reloads the whole board from GET /api/v1/board, so the wall
// is right after a lost connection, not just "events since". Wait times
// count up every second from the server's clock.
'use strict';
(() => {
  const board = document.getElementById('board');
  const conn = document.getElementById('conn');
  let amber = Number(board.dataset.amber) || 45;
  let skew = Number(board.dataset.now) - Date.now(); // server clock minus ours

  const stateText = { parked: 'Parked', ringback: 'Ringing back', returned: 'Returned' };
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const fmt = ms => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, ss = String(s % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
  };

  function lamp(s) {
    const free = !s.state || s.state === 'free';
    const a = el('article', 'lamp ' + (free ? 'free' : 'busy ' + s.state));
    a.dataset.slot = s.slot;
    a.dataset.state = s.state || 'free';
    a.dataset.timeout = s.timeout_seconds || 0;
    if (s.since) a.dataset.since = Date.parse(s.since);
    const top = el('div', 'lamp-top');
    top.append(el('span', 'lamp-dot'), el('span', 'lamp-slot', s.slot), el('span', 'lamp-label', s.label || ''),
      el('span', 'pill lamp-state', stateText[s.state] || 'Free'));
    top.firstChild.setAttribute('aria-hidden', 'true');
    a.append(top);
    if (free) {
      a.append(el('div', 'lamp-free-text', 'Free'));
      return a;
    }
    a.append(el('div', 'lamp-caller', s.caller_name || s.caller_number || 'Unknown caller'));
    a.append(el('div', 'lamp-number', s.caller_name ? (s.caller_number || '') : ''));
    let by = '';
    if (s.parker_name) by = 'Parked by ' + s.parker_name + (s.parker_number ? ` (${s.parker_number})` : '');
    else if (s.parker_number) by = 'Parked by ' + s.parker_number;
    a.append(el('div', 'lamp-parker', by));
    const foot = el('div', 'lamp-foot');
    const wait = el('span', 'lamp-wait');
    wait.title = 'Time waiting';
    foot.append(wait);
    if (window.deskActions) foot.append(window.deskActions(s));
    a.append(foot);
    return a;
  }

  function render(b) {
    amber = b.amber_after_seconds;
    skew = Date.parse(b.now) - Date.now();
    const frag = document.createDocumentFragment();
    for (const lot of b.lots) {
      const sec = el('section', 'lot');
      sec.dataset.lot = lot.name;
      const head = el('div', 'lot-head');
      head.append(el('h2', null, 'Lot ' + lot.name));
      if (lot.label) head.append(el('span', 'muted', lot.label));
      const lamps = el('div', 'lamps');
      for (const s of lot.slots) lamps.append(lamp(s));
      sec.append(head, lamps);
      frag.append(sec);
    }
    if (!b.lots.length) frag.append(el('div', 'panel empty', 'No park slots are configured. Add a park lot on the Setup page.'));
    board.replaceChildren(frag);
    document.getElementById('count-parked').textContent = `${b.parked} parked`;
    document.getElementById('count-ringing').textContent = `${b.ringing} ringing back`;
    tick();
  }

  // tick updates the wait times and the lamps' age colours.
  function tick() {
    const now = Date.now() + skew;
    for (const a of board.querySelectorAll('.lamp[data-since]')) {
      const waited = now - Number(a.dataset.since);
      const w = a.querySelector('.lamp-wait');
      if (w) w.textContent = fmt(waited);
      const timeout = Number(a.dataset.timeout) * 1000;
      const age = timeout && waited >= timeout ? 'red' : waited >= amber * 1000 ? 'amber' : 'ok';
      a.classList.toggle('age-amber', age === 'amber');
      a.classList.toggle('age-red', age === 'red');
      a.classList.toggle('age-ok', age === 'ok');
    }
  }

  let loading = null, again = false;
  async function reload() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      try {
        const r = await fetch('/api/v1/board', { headers: { Accept: 'application/json' }, cache: 'no-store' });
        if (r.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return; }
        if (!r.ok) throw new Error('board: ' + r.status);
        render(await r.json());
      } catch (e) {
        setConn('down', 'Board not reachable');
      } finally {
        loading = null;
        if (again) { again = false; reload(); }
      }
    })();
    return loading;
  }
  window.deskReload = reload;

  function setConn(cls, text) {
    conn.className = 'conn ' + cls;
    conn.textContent = text;
  }

  function connect() {
    const es = new EventSource('/api/v1/events');
    es.onopen = () => { setConn('live', 'Live'); reload(); };
    es.onerror = () => {
      setConn('down', 'Reconnecting…');
      if (es.readyState === EventSource.CLOSED) { // refused (logged out?): try again later
        es.close();
        setTimeout(() => { reload(); connect(); }, 5000);
      }
    };
    const onPark = () => reload();
    for (const t of ['call.parked', 'call.retrieved', 'call.timed_out', 'call.rang_back', 'call.returned', 'call.abandoned', 'config.reloaded', 'events.lost']) {
      es.addEventListener(t, onPark);
    }
  }

  tick();
  setInterval(tick, 1000);
  setInterval(reload, 30000); // a safety net: the stream carries every change
  connect();
})();
