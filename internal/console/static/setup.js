// parkpage Setup: the config as forms. One schema below describes every
// section's keys; the forms are built from it and GET /api/v1/config (the
// effective config). A change becomes an edit of its key ({path, value});
// Save sends the edits to POST /api/v1/config/edits, which applies them to
// the file's YAML (comments kept), validates like check-config, writes,
// keeps the previous version and reloads. Problems come back with their
// key and are shown next to that key's field.
(() => {
  'use strict';
  const root = document.getElementById('setup');
  if (!root) return;

  const MASK = '\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022';
  let doc = null; // GET /api/v1/config
  let version = root.dataset.version;
  const edits = new Map(); // pstr -> {path, value} | {path, delete: true}
  let newSeq = 0;

  // ---- paths -------------------------------------------------------
  // A path is an array of keys and indexes; pstr writes it the way the
  // config's problems name keys: zones.front.outputs[0].port.
  const pstr = (path) => path.reduce((s, k) => typeof k === 'number' ? `${s}[${k}]` : (s ? `${s}.${k}` : String(k)), '');
  const parentP = (s) => { const i = Math.max(s.lastIndexOf('.'), s.lastIndexOf('[')); return i < 0 ? '' : s.slice(0, i); };
  const get = (obj, path) => path.reduce((o, k) => (o == null ? undefined : o[k]), obj);

  // ---- schema ------------------------------------------------------
  const F = (key, label, type, o = {}) => ({ key, label, type, ...o });
  const DUR = 'e.g. 90s, 2m';
  const codecsRTP = ['pcmu', 'pcma', 'g722', 'opus'];
  const announceFields = [
    F(['announce', 'zones'], 'Announce to zones', 'zones', { help: 'Zones paged when a call is parked here. Empty: no announcement.' }),
    F(['announce', 'template'], 'Announcement', 'text', { placeholder: 'Call for {label} on {slot}', help: 'Fields: {slot} {label} {caller} {parker} {zone} {lot}' }),
    F(['announce', 'repeat_every'], 'Repeat every', 'duration', { placeholder: 'once', zeroEmpty: true }),
  ];
  const outputFields = {
    polycom: [
      F(['group'], 'Multicast group', 'text', { placeholder: '224.0.1.116' }),
      F(['port'], 'Port', 'number', { placeholder: '5001' }),
      F(['channel'], 'Channel', 'number', { help: '26-50 group paging (paging group N is channel 25+N)' }),
      F(['codec'], 'Codec', 'select', { options: ['g722', 'pcmu', 'pcma'] }),
      F(['caller_id'], 'Caller ID shown', 'text', { maxlength: 13 }),
      F(['interface'], 'Interface', 'text', { placeholder: 'default route', help: 'Name (eth0) or address' }),
      F(['ttl'], 'TTL', 'number'),
      F(['priority_channel'], 'Priority channel', 'number'),
      F(['emergency_channel'], 'Emergency channel', 'number'),
    ],
    rtp: [
      F(['group'], 'Multicast group', 'text', { placeholder: '224.5.6.20' }),
      F(['port'], 'Port', 'number'),
      F(['codec'], 'Codec', 'select', { options: codecsRTP }),
      F(['interface'], 'Interface', 'text', { placeholder: 'default route', help: 'Name (eth0) or address' }),
      F(['ttl'], 'TTL', 'number'),
      F(['payload_type'], 'Payload type', 'number', { placeholder: 'codec default' }),
    ],
    sip: [
      F(['uri'], 'SIP URI', 'text', { placeholder: 'sip:page@amp.lan' }),
      F(['preset'], 'Amplifier', 'select', { options: ['generic', 'algo', 'cyberdata', 'bogen', 'valcom', 'polycom', 'yealink'] }),
      F(['zone_code'], 'Zone code (DTMF)', 'text', { placeholder: 'none', help: 'Digits sent after answer, e.g. #1' }),
      F(['dtmf'], 'DTMF', 'select', { options: ['rfc4733', 'inband', 'info'] }),
      F(['username'], 'Username', 'text'),
      F(['password'], 'Password', 'password'),
      F(['answer_timeout'], 'Answer within', 'duration', { placeholder: '10s' }),
      F(['settle'], 'Settle after answer', 'duration', { placeholder: '1s' }),
      F(['retry'], 'Retries', 'number'),
    ],
    lineout: [
      F(['device'], 'Sound device', 'text', { placeholder: 'hw:0,0' }),
      F(['rate'], 'Sample rate', 'select', { options: ['48000', '44100', '32000', '16000', '8000'], number: true }),
    ],
  };
  const sections = [
    { id: 'park', title: 'Park lots & slots', render: renderPark },
    { id: 'zones', title: 'Zones & outputs', render: renderZones },
    { id: 'relays', title: 'Relays', render: (el) => renderMap(el, {
      path: ['relays'], noun: 'relay', keyLabel: 'Relay name', keyHint: 'e.g. amp-power',
      intro: 'GPIO outputs switched while pages play: zone select (on while a zone naming it is paged) or page active (any page).',
      fields: [F(['pin'], 'GPIO pin', 'text', { placeholder: 'GPIO17' }), F(['role'], 'Role', 'select', { options: ['zone', 'page_active'] }),
        F(['active_low'], 'Active low', 'bool'), F(['lead'], 'On before audio', 'duration', { placeholder: '400ms' }), F(['hold'], 'Off after audio', 'duration', { placeholder: '800ms' })],
    }) },
    { id: 'pages', title: 'Page extensions', render: (el) => renderMap(el, {
      path: ['pages'], noun: 'page extension', keyLabel: 'Extension', keyHint: 'e.g. 800',
      intro: 'Extensions phones dial to page zones live.',
      fields: [F(['zones'], 'Zones', 'zones'), F(['mode'], 'Mode', 'select', { options: ['live', 'store'] }), F(['priority'], 'Priority', 'select', { options: ['live', 'emergency'] }),
        F(['chime'], 'Chime', 'text', { placeholder: 'announce chime' }), F(['max_length'], 'Longest page', 'duration'), F(['allow'], 'Who may page', 'list', { placeholder: 'everyone trusted', help: 'Users (1001) and groups (@reception)' })],
    }) },
    { id: 'phone_pages', title: 'Phone pages', render: (el) => renderList(el, {
      path: ['phone_pages'], noun: 'phone page', title: (v, i) => `Phone page ${i + 1}${v && v.type ? ' · ' + v.type : ''}`,
      intro: "Phones' own multicast pages (Polycom group paging, Yealink multicast) relayed to zones' amplifiers, line outs and relays.",
      fresh: { type: 'polycom', channel: 26, priority: 'live' },
      fields: [F(['type'], 'Type', 'select', { options: ['polycom', 'rtp'] }), F(['group'], 'Multicast group', 'text'), F(['port'], 'Port', 'number'),
        F(['channel'], 'Channel (Polycom)', 'number'), F(['interface'], 'Interface', 'text', { placeholder: 'default route' }), F(['zones'], 'Relay to zones', 'zones'),
        F(['priority'], 'Priority', 'select', { options: ['live', 'emergency'] })],
    }) },
    { id: 'external', title: 'External park sources', render: renderExternal },
    { id: 'users', title: 'SIP users', render: renderUsers },
    { id: 'announce', title: 'Announcements', render: (el) => renderFields(el, 'Announcement sound', null, ['announce'], [
      F(['voice'], 'Voice', 'select', { options: ['slt', 'kal16', 'awb', 'rms'] }), F(['template'], 'Default announcement', 'text', { help: 'Fields: {slot} {label} {caller} {parker} {zone} {lot}' }),
      F(['chime'], 'Chime', 'text', { help: 'two-tone, three-tone, four-tone, single, beep, none, or a .wav file' }), F(['repeat'], 'Say it', 'number', { help: 'times, 1-5' }),
      F(['loudness'], 'Loudness (dBFS)', 'number', { step: 'any' }), F(['peak'], 'Peak (dBFS)', 'number', { step: 'any' }), F(['lead_in'], 'Silence before', 'duration')]) },
    { id: 'files', title: 'Backup & restore', render: renderFiles },
  ];

  // ---- DOM helpers -------------------------------------------------
  function h(tag, attrs = {}, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k != null) el.append(k);
    return el;
  }
  const zoneNames = () => Object.keys((doc && doc.config.zones) || {}).sort();

  // ---- fields ------------------------------------------------------
  // A field element carries its path (data-path, JSON), its problem key
  // (data-pstr), its type and its initial value.
  function field(base, f, isNew) {
    const path = base.concat(f.key);
    const s = pstr(path);
    let init = isNew ? undefined : get(doc.config, path);
    if (f.zeroEmpty && init === '0s') init = undefined; // unset, shown by the placeholder
    const id = 'f-' + (++newSeq);
    let input;
    const text = (v) => (v == null ? '' : Array.isArray(v) ? v.join(', ') : String(v));
    switch (f.type) {
      case 'select': {
        input = h('select', { id });
        const opts = f.options.slice();
        if (init != null && !opts.includes(String(init))) opts.unshift(String(init));
        if (init == null) input.append(h('option', { value: '', text: '—' }));
        for (const o of opts) input.append(h('option', { value: o, text: o }));
        input.value = init == null ? '' : String(init);
        break;
      }
      case 'bool':
        input = h('input', { id, type: 'checkbox' });
        input.checked = !!init;
        break;
      case 'zones':
        input = h('input', { id, type: 'text', list: 'zone-names', placeholder: f.placeholder || 'none', autocomplete: 'off' });
        input.value = text(init);
        break;
      case 'password':
        input = h('input', { id, type: 'password', autocomplete: 'new-password', placeholder: f.placeholder || '' });
        input.value = init == null ? '' : String(init);
        break;
      default:
        // Numbers are text with a numeric keyboard: a browser's number
        // input hides what was typed when it is not a number, and the
        // server's message should be about what the installer wrote.
        input = h('input', { id, type: 'text', inputmode: f.type === 'number' ? (f.step ? 'decimal' : 'numeric') : null,
          placeholder: f.placeholder || (f.type === 'duration' ? DUR : ''), maxlength: f.maxlength, autocomplete: 'off', spellcheck: 'false' });
        input.value = text(init);
    }
    input.classList.add('cfg');
    input.dataset.path = JSON.stringify(path);
    input.dataset.type = f.type + (f.number ? ':number' : '');
    input.dataset.init = f.type === 'bool' ? String(!!init) : input.value;
    if (isNew) input.dataset.fresh = '1';
    const wrap = h('div', { class: 'field' + (f.type === 'bool' ? ' field-bool' : ''), dataset: { pstr: s } });
    if (f.type === 'bool') wrap.append(h('label', { for: id, class: 'inline' }, input, ' ' + f.label));
    else wrap.append(h('label', { for: id, text: f.label }), input);
    if (f.help) wrap.append(h('div', { class: 'hint', text: f.help }));
    return wrap;
  }

  // valueOf reads a field as the config wants it; undefined deletes the key.
  function valueOf(input) {
    const [type, num] = input.dataset.type.split(':');
    if (type === 'bool') return input.checked;
    const v = input.value.trim();
    if (type === 'password' && v === MASK) return MASK;
    if (v === '') return undefined;
    if (type === 'number' || num) { const n = Number(v); return Number.isFinite(n) ? n : v; }
    if (type === 'list' || type === 'zones') return v.split(',').map((x) => x.trim()).filter(Boolean);
    return v;
  }
  const current = (input) => (input.dataset.type === 'bool' ? String(input.checked) : input.value);

  function track(input) {
    const path = JSON.parse(input.dataset.path);
    const key = pstr(path);
    const fresh = input.dataset.fresh === '1';
    const changed = current(input) !== input.dataset.init;
    input.closest('.field').classList.toggle('dirty', changed);
    if (!changed && !fresh) edits.delete(key);
    else {
      const v = valueOf(input);
      if (v === MASK) edits.delete(key);
      else if (v === undefined) { if (fresh) edits.delete(key); else edits.set(key, { path, delete: true }); }
      else edits.set(key, { path, value: v });
    }
    updateBar();
  }

  function collectFresh(container) {
    for (const i of container.querySelectorAll('.cfg[data-fresh="1"]')) {
      const v = valueOf(i);
      if (v !== undefined && v !== MASK && !(i.dataset.type === 'bool' && v === false)) edits.set(pstr(JSON.parse(i.dataset.path)), { path: JSON.parse(i.dataset.path), value: v });
    }
  }

  // ---- building blocks ---------------------------------------------
  function grid(base, fields, isNew) {
    return h('div', { class: 'fields' }, fields.map((f) => field(base, f, isNew)));
  }
  function renderFields(el, title, intro, base, fields) {
    const card = h('section', { class: 'panel card-section', dataset: { pstr: pstr(base) } }, h('h2', { text: title }));
    if (intro) card.append(h('p', { class: 'hint', text: intro }));
    card.append(grid(base, fields, false));
    el.append(card);
    return card;
  }
  function removeButton(path, card, what) {
    return h('button', { class: 'btn btn-small btn-danger', type: 'button', text: 'Remove',
      onclick: () => {
        const key = pstr(path);
        for (const k of [...edits.keys()]) if (k === key || k.startsWith(key + '.') || k.startsWith(key + '[')) edits.delete(k);
        if (card.dataset.fresh === '1') { card.remove(); updateBar(); return; }
        edits.set(key, { path, delete: true });
        card.classList.add('removed');
        card.querySelectorAll('input, select, button:not(.undo)').forEach((x) => { x.disabled = true; });
        card.querySelector('.card-head').append(h('span', { class: 'pill pill-bad', text: `${what} removed on save` }));
        updateBar();
      } });
  }

  // A map of named items (zones, relays, users): a card per key.
  function renderMap(el, spec) {
    if (spec.intro) el.append(h('p', { class: 'section-intro muted', text: spec.intro }));
    const list = h('div', { class: 'cards' });
    const items = get(doc.config, spec.path) || {};
    for (const k of Object.keys(items).sort(spec.sort)) list.append(mapCard(spec, k, false));
    if (!Object.keys(items).length) list.append(h('div', { class: 'panel empty', text: `No ${spec.noun}s yet.` }));
    el.append(list);
    const name = h('input', { type: 'text', placeholder: spec.keyHint, 'aria-label': spec.keyLabel, autocomplete: 'off' });
    const msg = h('div', { class: 'field-msg' });
    el.append(h('form', { class: 'add-row', onsubmit: (e) => {
      e.preventDefault();
      const k = name.value.trim();
      msg.textContent = '';
      if (!k) { msg.textContent = `Give the ${spec.noun} a name.`; return; }
      if (items[k] || list.querySelector(`[data-key="${CSS.escape(k)}"]`)) { msg.textContent = `There is already a ${spec.noun} ${k}.`; return; }
      list.querySelector('.empty')?.remove();
      const card = mapCard(spec, k, true);
      list.append(card);
      collectFresh(card);
      updateBar();
      name.value = '';
      card.querySelector('.cfg')?.focus();
    } }, h('label', { class: 'inline', text: `New ${spec.noun}` }), name, h('button', { class: 'btn', type: 'submit', text: `Add ${spec.noun}` }), msg));
  }
  function mapCard(spec, k, isNew) {
    const path = spec.path.concat(k);
    const card = h('section', { class: 'panel item', dataset: { pstr: pstr(path), key: k, fresh: isNew ? '1' : '0' } });
    card.append(h('div', { class: 'card-head' }, h('h3', { text: spec.title ? spec.title(k) : k }), isNew ? h('span', { class: 'pill pill-ok', text: 'new' }) : null, h('span', { class: 'grow' }), removeButton(path, card, spec.noun)));
    card.append(grid(path, spec.fields, isNew));
    if (spec.extra) spec.extra(card, path, isNew);
    if (isNew && spec.fresh) applyFresh(card, spec.fresh);
    return card;
  }
  function applyFresh(card, fresh) {
    for (const i of card.querySelectorAll('.cfg')) {
      const p = JSON.parse(i.dataset.path);
      const v = fresh[p[p.length - 1]];
      if (v === undefined) continue;
      if (i.type === 'checkbox') i.checked = !!v; else i.value = String(v);
    }
  }

  // A list of items (lots, phone pages, outputs): a card per index.
  function renderList(el, spec) {
    if (spec.intro) el.append(h('p', { class: 'section-intro muted', text: spec.intro }));
    const list = h('div', { class: 'cards' });
    const items = get(doc.config, spec.path) || [];
    items.forEach((v, i) => list.append(listCard(spec, i, v, false)));
    el.append(list);
    el.append(h('div', { class: 'add-row' }, h('button', { class: 'btn', type: 'button', text: `Add ${spec.noun}`, onclick: () => {
      const i = list.querySelectorAll(':scope > .item').length;
      const card = listCard(spec, i, spec.fresh, true);
      list.append(card);
      collectFresh(card);
      updateBar();
    } })));
    return list;
  }
  function listCard(spec, i, v, isNew) {
    const path = spec.path.concat(i);
    const card = h('section', { class: 'panel item', dataset: { pstr: pstr(path), fresh: isNew ? '1' : '0' } });
    card.append(h('div', { class: 'card-head' }, h('h3', { text: spec.title(v, i) }), isNew ? h('span', { class: 'pill pill-ok', text: 'new' }) : null, h('span', { class: 'grow' }), removeButton(path, card, spec.noun)));
    const fields = typeof spec.fields === 'function' ? spec.fields(v) : spec.fields;
    card.append(grid(path, fields, isNew));
    if (isNew && spec.fresh) applyFresh(card, spec.fresh);
    if (spec.extra) spec.extra(card, path, v, isNew);
    return card;
  }

  // ---- sections ----------------------------------------------------
  function renderPark(el) {
    el.append(h('p', { class: 'section-intro muted', text: 'A lot is a park extension with its slots. A call rings back to whoever parked it after the timeout, then goes to the fallback.' }));
    renderList(el, {
      path: ['park', 'lots'], noun: 'park lot', title: (v, i) => `Lot ${v && v.extension ? v.extension : i + 1}${v && v.slots ? ' · slots ' + v.slots : ''}`,
      fresh: { find_slot: 'next', on_taken: 'refuse', on_empty: 'consult' },
      fields: [F(['extension'], 'Park extension', 'text', { placeholder: '700' }), F(['slots'], 'Slots', 'text', { placeholder: '701-710' }), F(['label'], 'Label of its slots', 'text'),
        F(['timeout'], 'Ring back after', 'duration', { placeholder: '90s' }), F(['ringback_time'], 'Ring back for', 'duration', { placeholder: '30s' }),
        F(['fallback'], 'Then call (fallback)', 'text', { placeholder: 'e.g. 100 or sip:operator@pbx' }), F(['pickup'], 'Who may pick up', 'list', { placeholder: 'everyone', help: 'Users (1001) and groups (@reception)' }),
        F(['find_slot'], 'Park in', 'select', { options: ['next', 'first'] }), F(['on_taken'], 'Directed park to a busy slot', 'select', { options: ['refuse', 'next'] }),
        F(['on_empty'], 'Call to an empty slot', 'select', { options: ['consult', 'reject'] }), ...announceFields],
    });
    el.append(h('h2', { class: 'sub', text: 'Slots' }));
    el.append(h('p', { class: 'section-intro muted', text: 'Per-slot settings override the lot. Leave a cell empty to use the lot\u2019s. \u201cHear\u201d plays the slot\u2019s announcement as saved.' }));
    for (const [li, lot] of ((doc.config.park && doc.config.park.lots) || []).entries()) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(String(lot.slots || ''));
      if (!m) continue;
      const first = +m[1], last = +(m[2] || m[1]);
      const table = h('table', { class: 'data slots' }, h('thead', {}, h('tr', {}, ['Slot', 'Label', 'Ring back after', 'Who may pick up', 'Announce to zones', 'Announcement', ''].map((t) => h('th', { text: t })))));
      const tbody = h('tbody');
      for (let n = first; n <= last && n - first < 100; n++) {
        const base = ['park', 'slots', String(n)];
        const cells = [F(['label'], 'Label', 'text', { placeholder: lot.label || '' }), F(['timeout'], 'Timeout', 'duration', { placeholder: lot.timeout }),
          F(['pickup'], 'Pickup', 'list', { placeholder: (lot.pickup || []).join(', ') || 'everyone' }),
          F(['announce', 'zones'], 'Zones', 'zones', { placeholder: ((lot.announce && lot.announce.zones) || []).join(', ') || 'none' }),
          F(['announce', 'template'], 'Announcement', 'text', { placeholder: (lot.announce && lot.announce.template) || 'zone or default' })];
        const row = h('tr', { dataset: { pstr: pstr(base), slot: String(n) } }, h('th', { scope: 'row', class: 'slot-num', text: String(n) }));
        for (const c of cells) { const f = field(base, c, false); f.querySelector('label').classList.add('sr-only'); row.append(h('td', {}, f)); }
        row.append(h('td', { class: 'right' }, h('button', { class: 'btn btn-small hear-slot', type: 'button', 'aria-label': `Hear slot ${n}`, onclick: (e) => hearSlot(e.currentTarget, String(n)) }, '\u25B6', h('span', { class: 'lbl', text: ' Hear' }))));
        tbody.append(row);
      }
      table.append(tbody);
      el.append(h('section', { class: 'panel slots-card', dataset: { pstr: `park.lots[${li}].slots` } }, h('h3', { text: `Lot ${lot.extension} \u00b7 slots ${lot.slots}` }), h('div', { class: 'table-scroll' }, table)));
    }
    renderFields(el, 'Park server', null, ['park'], [F(['whisper'], 'Said to whoever answers a ring-back', 'text'), F(['music'], 'Hold music', 'text', { placeholder: 'built-in', help: 'A WAV file or a directory of them' }),
      F(['rtp_timeout'], 'Hang up a silent caller after', 'duration')]);
  }

  function hearSlot(btn, slot) {
    const row = btn.closest('tr');
    let player = row.nextElementSibling && row.nextElementSibling.classList.contains('hear-row') ? row.nextElementSibling : null;
    if (!player) {
      const dirty = row.querySelector('.dirty') ? ' Unsaved changes are not in it: save first to hear them.' : '';
      const audio = h('audio', { controls: true, autoplay: true, src: `/api/v1/hear?slot=${encodeURIComponent(slot)}` });
      const note = h('span', { class: 'hint', text: `Slot ${slot} as its first zone hears it.${dirty}` });
      audio.addEventListener('error', () => { note.textContent = `Slot ${slot}: could not render the announcement (does it announce to a zone, and is it saved?).`; note.classList.add('field-msg'); });
      player = h('tr', { class: 'hear-row' }, h('td', { colspan: '7' }, h('div', { class: 'hear-inline' }, audio, note)));
      row.after(player);
    } else {
      player.querySelector('audio').play();
    }
  }

  function renderZones(el) {
    el.append(h('p', { class: 'section-intro muted', text: 'A zone is a set of outputs paged together: phones listening to a multicast group, SIP amplifiers, a sound card\u2019s line out, and the relays switched with it. Test them on the Test outputs page.' }));
    renderMap(el, {
      path: ['zones'], noun: 'zone', keyLabel: 'Zone name', keyHint: 'e.g. warehouse',
      title: (k) => `Zone ${k}`,
      fields: [F(['description'], 'Description', 'text'), F(['template'], 'Announcement (this zone)', 'text', { placeholder: 'lot or default', help: 'Fields: {slot} {label} {caller} {parker} {zone} {lot}' }),
        F(['relays'], 'Relays', 'list', { placeholder: 'none' }), F(['max_page'], 'Longest page', 'duration', { placeholder: '60s' }),
        F(['align'], 'Outputs start', 'select', { options: ['together', 'latency'], help: 'together (default): every output\u2019s first audio at the same moment (the others wait for Polycom\u2019s alert tones and SIP amplifiers); latency: each output as soon as it can' }),
        F(['align_wait'], 'Wait for slow outputs', 'duration', { placeholder: '3s', help: 'Longest wait for a SIP amplifier still ringing; one answering later joins the page late' })],
      extra: (card, path, isNew) => {
        card.append(h('h4', { text: 'Outputs' }));
        const outs = isNew ? [] : (get(doc.config, path.concat('outputs')) || []);
        const list = h('div', { class: 'outputs' });
        outs.forEach((o, i) => list.append(outputCard(path.concat('outputs', i), o, false)));
        card.append(list);
        const type = h('select', { 'aria-label': 'Output type' }, Object.keys(outputFields).map((t) => h('option', { value: t, text: outputTypeName(t) })));
        type.value = 'rtp';
        card.append(h('div', { class: 'add-row' }, type, h('button', { class: 'btn btn-small', type: 'button', text: 'Add output', onclick: () => {
          const i = list.querySelectorAll(':scope > .output').length;
          const c = outputCard(path.concat('outputs', i), { type: type.value }, true);
          list.append(c);
          collectFresh(c);
          updateBar();
        } })));
      },
    });
  }
  function outputTypeName(t) {
    return { polycom: 'Polycom group paging', rtp: 'RTP multicast (Yealink)', sip: 'SIP amplifier', lineout: 'Line out' }[t] || t;
  }
  function outputCard(path, o, isNew) {
    const i = path[path.length - 1];
    const card = h('div', { class: 'output item', dataset: { pstr: pstr(path), fresh: isNew ? '1' : '0' } });
    card.append(h('div', { class: 'card-head' }, h('span', { class: `type-badge type-${o.type}`, text: outputTypeName(o.type) }), h('span', { class: 'muted', text: `output ${i + 1}` }),
      isNew ? h('span', { class: 'pill pill-ok', text: 'new' }) : null, h('span', { class: 'grow' }), removeButton(path, card, 'output')));
    const typeField = field(path, F(['type'], 'Type', 'text'), isNew);
    typeField.hidden = true;
    typeField.querySelector('input').value = o.type;
    card.append(typeField);
    card.append(grid(path, outputFields[o.type] || [], isNew));
    if (isNew) {
      const fresh = { rtp: { codec: 'pcmu', ttl: 1 }, polycom: { group: '224.0.1.116', port: 5001, channel: 26, codec: 'g722' }, sip: { preset: 'generic', dtmf: 'rfc4733' }, lineout: { rate: '48000' } }[o.type] || {};
      applyFresh(card, fresh);
    }
    return card;
  }

  function renderExternal(el) {
    el.append(h('p', { class: 'section-intro muted', text: 'Park events from a PBX that parks calls itself: Asterisk AMI, the PBX\u2019s BLF dialog events, or a webhook (POST /api/v1/park-events).' }));
    const opt = (key, title, fields) => {
      const path = ['external', key];
      const present = get(doc.config, path) != null;
      const card = renderFields(el, title, present ? null : 'Not configured. Fill in the fields to turn it on.', path, fields);
      if (present) card.querySelector('h2').after(removeButton(path, card, title));
      card.classList.add('item');
      card.prepend(h('div', { class: 'card-head' }));
      card.querySelector('.card-head').append(card.querySelector('h2'), h('span', { class: 'grow' }));
      if (present) card.querySelector('.card-head').append(card.querySelector('.btn-danger'));
    };
    opt('ami', 'Asterisk AMI', [F(['address'], 'Address', 'text', { placeholder: 'pbx.lan:5038' }), F(['username'], 'Manager user', 'text'), F(['secret'], 'Secret', 'password'), F(['lot'], 'Parking lot', 'text', { placeholder: 'every lot' })]);
    opt('blf', 'BLF watch', [F(['server'], 'PBX', 'text', { placeholder: 'sip:pbx.lan:5060' }), F(['slots'], 'PBX slots', 'text', { placeholder: '701-710' }), F(['uri'], 'Watched URI', 'text', { placeholder: 'sip:{slot}@pbx host' }),
      F(['username'], 'Username', 'text'), F(['password'], 'Password', 'password'), F(['expires'], 'Subscription lifetime', 'duration', { placeholder: '600s' })]);
    renderFields(el, 'Webhook', 'Bearer tokens accepted on POST /api/v1/park-events (at least 16 random characters each).', ['external'], [
      F(['webhook_tokens'], 'Webhook tokens', 'list', { placeholder: 'none' }), F(['announce_unknown_slots'], 'Announce slots that are not configured here', 'bool')]);
  }

  function renderUsers(el) {
    renderFields(el, 'PBX', null, ['sip'], [F(['pbx'], 'PBX (ring-backs and fallbacks go there)', 'text', { placeholder: 'sip:pbx.lan:5060' }), F(['domain'], 'Domain', 'text', { placeholder: 'the address called' })]);
    renderMap(el, {
      path: ['sip', 'users'], noun: 'SIP user', keyLabel: 'User', keyHint: 'e.g. 201',
      intro: 'Accounts phones register with to park, pick up and watch slots (digest authentication).',
      sort: (a, b) => a.localeCompare(b, undefined, { numeric: true }),
      fields: [F(['password'], 'Password', 'password'), F(['display'], 'Name shown', 'text'), F(['groups'], 'Groups', 'list', { placeholder: 'none', help: 'e.g. reception (pickup rules say @reception)' })],
    });
  }

  function renderFiles(el) {
    const result = h('div', { id: 'upload-result' });
    const file = h('input', { type: 'file', id: 'upload-file', accept: '.yaml,.yml,text/yaml,text/plain' });
    const send = async (check) => {
      result.replaceChildren();
      const f = file.files[0];
      if (!f) { result.append(h('div', { class: 'alert alert-error', text: 'Choose a config file first.' })); return; }
      const text = await f.text();
      const res = await api('POST', '/api/v1/config/upload', { yaml: text, check });
      if (res.status === 422) {
        result.append(h('div', { class: 'alert alert-error' }, h('strong', { text: `${f.name} was refused: ` }), res.body.error,
          h('ul', { class: 'problems' }, res.body.problems.map((p) => h('li', { text: p.text })))));
      } else if (!res.ok) {
        result.append(h('div', { class: 'alert alert-error', text: res.body.error || `Upload failed (${res.status})` }));
      } else if (check) {
        result.append(h('div', { class: 'alert alert-ok', text: `${f.name} is valid. Nothing was changed.` }));
      } else {
        done(res.body, `${f.name} uploaded`);
      }
    };
    renderFields(el, 'Download', null, ['_files'], []).append(
      h('p', { class: 'hint', text: 'The config file, or a full backup (the config and the SIP registrations, as a zip).' }),
      h('div', { class: 'button-row' }, h('a', { class: 'btn', href: '/api/v1/config/file', download: 'parkpage.yaml', text: 'Download config' }), h('a', { class: 'btn', href: '/api/v1/config/backup', download: 'parkpage-backup.zip', text: 'Download backup' })));
    renderFields(el, 'Upload a config', 'The file is checked first: a config with problems replaces nothing.', ['_upload'], []).append(
      h('div', { class: 'field' }, h('label', { for: 'upload-file', text: 'Config file' }), file),
      h('div', { class: 'button-row' }, h('button', { class: 'btn', type: 'button', id: 'upload-check', text: 'Check', onclick: () => send(true) }), h('button', { class: 'btn btn-primary', type: 'button', id: 'upload-save', text: 'Upload and apply', onclick: () => send(false) })),
      result);
  }

  // ---- saving ------------------------------------------------------
  const bar = document.getElementById('savebar');
  function updateBar() {
    const n = edits.size;
    bar.hidden = n === 0;
    document.getElementById('savebar-text').textContent = n === 1 ? '1 unsaved change' : `${n} unsaved changes`;
  }

  // ordered puts new keys and list items before deeper ones, lower
  // indexes first, and deletions of list items last, highest first, so
  // indexes stay right.
  function ordered() {
    const all = [...edits.values()];
    const cmp = (a, b) => {
      for (let i = 0; i < Math.min(a.path.length, b.path.length); i++) {
        const x = a.path[i], y = b.path[i];
        if (x === y) continue;
        if (typeof x === 'number' && typeof y === 'number') return x - y;
        return String(x) < String(y) ? -1 : 1;
      }
      return a.path.length - b.path.length;
    };
    const sets = all.filter((e) => !e.delete).sort(cmp);
    const dels = all.filter((e) => e.delete).sort((a, b) => -cmp(a, b));
    return sets.concat(dels);
  }

  async function api(method, url, body) {
    const res = await fetch(url, { method, headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, credentials: 'same-origin', body: body ? JSON.stringify(body) : undefined });
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 401) location.href = '/login?next=' + encodeURIComponent(location.pathname + location.hash);
    return { ok: res.ok, status: res.status, body: data };
  }

  function banner(kind, ...content) {
    const b = document.getElementById('setup-banner');
    b.replaceChildren(h('div', { class: `alert alert-${kind}` }, ...content));
    b.scrollIntoView({ block: 'nearest' });
  }

  function clearProblems() {
    document.querySelectorAll('.field-msg.problem, .card-msg').forEach((x) => x.remove());
    document.querySelectorAll('.field-error').forEach((x) => x.classList.remove('field-error'));
    document.querySelectorAll('[aria-invalid]').forEach((x) => x.removeAttribute('aria-invalid'));
    document.querySelectorAll('.setup-nav .count').forEach((x) => x.remove());
  }

  // showProblems puts each problem next to the field of its key (or the
  // nearest card holding it) and counts them on the section tabs.
  function showProblems(problems) {
    clearProblems();
    const unplaced = [];
    let first = null;
    for (const p of problems) {
      let el = null;
      for (let s = p.path; s && !el; s = parentP(s)) el = document.querySelector(`[data-pstr="${CSS.escape(s)}"]`);
      if (!el) { unplaced.push(p); continue; }
      const msg = h('div', { class: (el.classList.contains('field') ? 'field-msg problem' : 'card-msg alert ' + (p.warning ? 'alert-warn' : 'alert-error')) + (p.warning ? ' warning' : ''),
        text: (el.dataset.pstr === p.path ? '' : p.path + ': ') + p.message + (p.line ? ` (line ${p.line})` : '') });
      if (el.classList.contains('field')) {
        if (!p.warning) { el.classList.add('field-error'); el.querySelector('.cfg')?.setAttribute('aria-invalid', 'true'); }
        el.append(msg);
      } else if (el.tagName === 'TR') {
        el.classList.add('field-error');
        el.after(h('tr', { class: 'card-msg' }, h('td', { colspan: '7' }, msg)));
      } else {
        el.querySelector('.card-head, h2, h3')?.after(msg) ?? el.prepend(msg);
      }
      const sec = el.closest('.setup-section');
      if (sec && !p.warning) {
        const tab = document.querySelector(`.setup-nav a[href="#${sec.id.slice(4)}"]`);
        const c = tab.querySelector('.count') || tab.appendChild(h('span', { class: 'count', text: '0' }));
        c.textContent = String(+c.textContent + 1);
        first = first || { sec, el };
      }
    }
    return { unplaced, first };
  }

  async function save(check) {
    if (!edits.size) return;
    const btns = bar.querySelectorAll('button');
    btns.forEach((b) => { b.disabled = true; });
    try {
      const res = await api('POST', '/api/v1/config/edits', { base: version, edits: ordered(), check });
      if (res.status === 422) {
        const errs = res.body.problems.filter((p) => !p.warning);
        const { unplaced, first } = showProblems(res.body.problems);
        banner('error', h('strong', { text: 'Not saved. ' }), `${errs.length === 1 ? 'One setting needs' : errs.length + ' settings need'} fixing: see the messages by the fields.`,
          unplaced.length ? h('ul', { class: 'problems' }, unplaced.map((p) => h('li', { text: p.text }))) : null);
        if (first) { show(first.sec.id.slice(4)); first.el.scrollIntoView({ block: 'center' }); first.el.querySelector('.cfg')?.focus({ preventScroll: true }); }
        return;
      }
      if (!res.ok) {
        banner('error', h('strong', { text: 'Not saved. ' }), res.body.error || `The appliance answered ${res.status}.`);
        return;
      }
      if (check) {
        clearProblems();
        showProblems(res.body.warnings || []);
        banner('ok', 'The changes are valid. Nothing was saved yet.');
        return;
      }
      done(res.body, 'Saved and applied');
    } finally {
      btns.forEach((b) => { b.disabled = false; });
    }
  }

  async function done(res, what) {
    edits.clear();
    await load();
    const prev = res.previous ? [' The previous version is kept as ', h('code', { text: res.previous }), '.'] : [];
    banner('ok', h('strong', { text: `${what}. ` }), 'Written to ', h('code', { text: res.path }), ' and in force now; calls carried on.', ...prev);
    if (res.warnings && res.warnings.length) showProblems(res.warnings);
  }

  // ---- page --------------------------------------------------------
  function show(id) {
    for (const s of document.querySelectorAll('.setup-section')) s.hidden = s.id !== 'sec-' + id;
    for (const a of document.querySelectorAll('.setup-nav a')) a.classList.toggle('active', a.getAttribute('href') === '#' + id);
  }

  async function load() {
    const res = await api('GET', '/api/v1/config');
    if (!res.ok) { banner('error', res.body.error || 'Could not read the settings.'); return; }
    doc = res.body;
    version = doc.version;
    const nav = document.getElementById('setup-nav');
    const box = document.getElementById('setup-sections');
    nav.replaceChildren();
    box.replaceChildren(h('datalist', { id: 'zone-names' }, zoneNames().map((z) => h('option', { value: z }))));
    for (const s of sections) {
      nav.append(h('a', { href: '#' + s.id, text: s.title }));
      const el = h('div', { class: 'setup-section', id: 'sec-' + s.id, hidden: true }, h('h2', { class: 'section-title', text: s.title }));
      s.render(el);
      box.append(el);
    }
    const want = location.hash.slice(1);
    show(sections.some((s) => s.id === want) ? want : 'park');
    updateBar();
    if (doc.warnings && doc.warnings.length) showProblems(doc.warnings);
    root.classList.add('ready');
  }

  root.addEventListener('input', (e) => { if (e.target.classList.contains('cfg')) track(e.target); });
  root.addEventListener('change', (e) => { if (e.target.classList.contains('cfg')) track(e.target); });
  window.addEventListener('hashchange', () => { const id = location.hash.slice(1); if (sections.some((s) => s.id === id)) show(id); });
  document.getElementById('save').addEventListener('click', () => save(false));
  document.getElementById('check').addEventListener('click', () => save(true));
  document.getElementById('discard').addEventListener('click', () => { edits.clear(); document.getElementById('setup-banner').replaceChildren(); load(); });
  window.addEventListener('beforeunload', (e) => { if (edits.size) e.preventDefault(); });
  load();
})();
