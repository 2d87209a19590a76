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

  function lamp(s, lotLabel) {
    const free = !s.state || s.state === 'free';
    const a = el('article', 'lamp ' + (free ? 'free' : 'busy ' + s.state));
    a.dataset.slot = s.slot;
    a.dataset.state = s.state || 'free';
    a.dataset.timeout = s.timeout_seconds || 0;
    if (s.since) a.dataset.since = Date.parse(s.since);
    const top = el('div', 'lamp-top');
    top.append(el('span', 'lamp-dot'), el('span', 'lamp-slot', s.slot), el('span', 'pill lamp-state', stateText[s.state] || 'Free'));
    top.firstChild.setAttribute('aria-hidden', 'true');
    a.append(top, el('div', 'lamp-label', s.label && s.label !== lotLabel ? s.label : ''));
    if (free) return a;
    a.append(el('div', 'lamp-caller', s.caller_name || s.caller_number || 'Unknown caller'));
    a.append(el('div', 'lamp-number', s.caller_name ? (s.caller_number || '') : ''));
    a.append(el('div', 'lamp-ring', s.state === 'ringback' && s.ring_target ? 'Ringing ' + s.ring_target : ''));
    let by = '';
    if (s.parker_name) by = 'Parked by ' + s.parker_name + (s.parker_number ? ` (${s.parker_number})` : '');
    else if (s.parker_number) by = 'Parked by ' + s.parker_number;
    a.append(el('div', 'lamp-parker', by));
    const foot = el('div', 'lamp-foot');
    const wait = el('span', 'lamp-wait');
    wait.title = 'Time waiting';
    const acts = el('span', 'lamp-actions');
    for (const [act, label, title] of [['ring', 'Ring', 'Ring an extension for this call'], ['move', 'Move', 'Move to another slot'], ['hangup', 'Hang up', 'Hang up this call']]) {
      const b = el('button', 'btn btn-small' + (act === 'hangup' ? ' btn-danger' : ''), label);
      b.type = 'button';
      b.title = title;
      b.dataset.action = act;
      b.dataset.slot = s.slot;
      acts.append(b);
    }
    foot.append(wait, acts);
    a.append(foot);
    return a;
  }

  const baseTitle = document.title;
  let seen = null; // slot -> state on the last board, for the "just parked" flash
  let render = function (b) {
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
      for (const s of lot.slots) lamps.append(lamp(s, lot.label));
      sec.append(head, lamps);
      frag.append(sec);
    }
    if (!b.lots.length) frag.append(el('div', 'panel empty', 'No park slots are configured. Add a park lot on the Setup page.'));
    board.replaceChildren(frag);
    const now = {};
    for (const a of board.querySelectorAll('.lamp')) {
      now[a.dataset.slot] = a.dataset.state;
      if (seen && a.dataset.state !== 'free' && seen[a.dataset.slot] !== a.dataset.state) a.classList.add('fresh');
    }
    seen = now;
    const waiting = b.parked + b.ringing;
    document.title = (waiting ? `(${waiting}) ` : '') + baseTitle;
    document.getElementById('count-parked').textContent = `${b.parked} parked`;
    document.getElementById('count-ringing').textContent = `${b.ringing} ringing back`;
    tick();
  };

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

  // Actions: ring, move, hang up, each confirmed in a dialog.
  let last = null; // the board as last loaded
  const origRender = render;
  render = b => { last = b; origRender(b); };

  function describe(slot) {
    const a = board.querySelector(`.lamp[data-slot="${CSS.escape(slot)}"]`);
    if (!a) return 'Slot ' + slot;
    const who = a.querySelector('.lamp-caller')?.textContent || '';
    return `Slot ${slot}${who ? ' · ' + who : ''}`;
  }

  function toast(text, error) {
    const t = el('div', 'toast' + (error ? ' error' : ''), text);
    t.setAttribute('role', error ? 'alert' : 'status');
    document.body.append(t);
    setTimeout(() => t.remove(), error ? 6000 : 3000);
  }

  async function act(action, slot, to) {
    const r = await fetch(`/api/v1/slots/${encodeURIComponent(slot)}/${action}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(to ? { to } : {}),
    });
    if (r.status === 401) { location.href = '/login?next=/'; return null; }
    let body = {};
    try { body = await r.json(); } catch (e) { /* not JSON */ }
    return { ok: r.ok, body };
  }

  board.addEventListener('click', ev => {
    const b = ev.target.closest('button[data-action]');
    if (!b) return;
    const action = b.dataset.action, slot = b.dataset.slot;
    const dlg = document.getElementById('act-' + action);
    const form = dlg.querySelector('form');
    form.dataset.slot = slot;
    dlg.querySelector('.act-what').textContent = describe(slot);
    const msg = dlg.querySelector('.field-msg');
    msg.hidden = true;
    if (action === 'move') {
      const sel = dlg.querySelector('select');
      sel.replaceChildren();
      for (const lot of (last ? last.lots : [])) {
        for (const s of lot.slots) {
          if (s.state && s.state !== 'free') continue;
          const o = el('option', null, s.slot + (s.label ? ' · ' + s.label : ''));
          o.value = s.slot;
          sel.append(o);
        }
      }
      if (!sel.options.length) { toast('No free slot to move the call to.', true); return; }
    }
    if (action === 'ring') dlg.querySelector('input').value = '';
    dlg.showModal();
  });

  for (const dlg of document.querySelectorAll('dialog[id^="act-"]')) {
    const form = dlg.querySelector('form');
    form.addEventListener('submit', async ev => {
      if (ev.submitter && ev.submitter.value === 'cancel') return; // closes the dialog
      ev.preventDefault();
      const action = form.dataset.action, slot = form.dataset.slot;
      const field = form.querySelector('[name="to"]');
      const to = field ? field.value.trim() : '';
      const msg = form.querySelector('.field-msg');
      const btn = form.querySelector('button[value="ok"]');
      btn.disabled = true;
      try {
        const res = await act(action, slot, to);
        if (!res) return;
        if (!res.ok) {
          msg.textContent = res.body.error || 'Refused.';
          msg.hidden = false;
          if (field) field.setAttribute('aria-invalid', res.body.field === 'to' ? 'true' : 'false');
          return;
        }
        dlg.close();
        toast({ ring: `Ringing ${to} for slot ${slot}`, move: `Moved slot ${slot} to ${to}`, hangup: `Hung up the call in slot ${slot}` }[action]);
        reload();
      } catch (e) {
        msg.textContent = 'The appliance did not answer: ' + e.message;
        msg.hidden = false;
      } finally {
        btn.disabled = false;
      }
    });
  }

  tick();
  setInterval(tick, 1000);
  setInterval(reload, 30000); // a safety net: the stream carries every change
  connect();
})();
