// parkpage Test outputs: the zone and output "Test" buttons page a short
// test (POST /api/v1/zones/{zone}/test) and show, per output, whether it
// went out; "Hear it" plays GET /api/v1/hear (the announcement encoded in
// the zone's codec and decoded again).
(() => {
  'use strict';
  const h = (tag, cls, text) => { const e = document.createElement(tag); if (cls) e.className = cls; if (text != null) e.textContent = text; return e; };
  const good = { sent: 1, answered: 1, played: 1, pulsed: 1, ok: 1 };

  function pill(r) {
    const p = h('span', 'pill ' + (r.ok ? 'pill-ok' : r.status === 'cut' || r.status.startsWith('not ') ? 'pill-warn' : 'pill-bad'), r.status);
    const wrap = h('span', 'result-line');
    wrap.append(p);
    if (r.took_seconds && r.ok) wrap.append(h('span', 'muted', ` ${r.took_seconds.toFixed(1)} s`));
    if (r.detail) wrap.append(h('div', 'hint', r.detail));
    return wrap;
  }

  async function test(section, output) {
    const zone = section.dataset.zone;
    const tone = section.querySelector('.tone-only').checked;
    const rows = [...section.querySelectorAll('tbody tr')].filter((tr) => output == null || tr.dataset.output === String(output) || (tr.dataset.name || '').endsWith('/relays'));
    const buttons = section.querySelectorAll('button');
    buttons.forEach((b) => { b.disabled = true; });
    for (const tr of rows) {
      if (output != null && (tr.dataset.name || '').endsWith('/relays')) continue;
      const c = tr.querySelector('.result');
      c.replaceChildren(h('span', 'pill pill-ring testing', 'paging…'));
    }
    const summary = section.querySelector('.zone-test-summary');
    summary.textContent = tone ? 'Sending the chime…' : 'Paging a short test announcement…';
    const body = { tone };
    if (output != null) body.output = output;
    try {
      const res = await fetch(`/api/v1/zones/${encodeURIComponent(zone)}/test`, {
        method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(body),
      });
      const data = await res.json().catch(() => ({}));
      if (res.status === 401) { location.href = '/login?next=/test'; return; }
      if (!res.ok) {
        summary.textContent = data.error || `The test failed (${res.status}).`;
        summary.className = 'zone-test-summary field-msg';
        for (const tr of rows) tr.querySelector('.result').replaceChildren(h('span', 'muted', 'Not tested'));
        return;
      }
      let ok = 0;
      for (const r of data.outputs) {
        const tr = section.querySelector(`tr[data-name="${CSS.escape(r.output)}"]`);
        if (!tr) continue;
        tr.querySelector('.result').replaceChildren(pill(r));
        tr.dataset.status = r.status;
        if (good[r.status]) ok++;
      }
      summary.className = 'zone-test-summary hint';
      summary.textContent = `${ok} of ${data.outputs.length} went out` + (data.text ? ` \u00b7 \u201c${data.text}\u201d` : ' \u00b7 chime') + ` \u00b7 page ${data.page} ${data.reason}.`;
    } catch (e) {
      summary.textContent = 'The appliance did not answer: ' + e.message;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  document.addEventListener('click', (e) => {
    const b = e.target.closest('button');
    if (!b) return;
    const section = b.closest('.zone-test');
    if (!section) return;
    if (b.classList.contains('test-zone')) test(section, null);
    if (b.classList.contains('test-output')) test(section, +b.closest('tr').dataset.output);
  });

  // Hear it.
  const form = document.getElementById('hear-form');
  if (!form) return;
  const what = document.getElementById('hear-what');
  const textWrap = document.getElementById('hear-text-wrap');
  const audio = document.getElementById('hear-audio');
  const status = document.getElementById('hear-status');
  const sync = () => { textWrap.hidden = what.value !== 'text'; };
  what.addEventListener('change', sync);
  sync();
  audio.addEventListener('error', async () => {
    const res = await fetch(audio.src, { credentials: 'same-origin' }).catch(() => null);
    const data = res ? await res.json().catch(() => ({})) : {};
    status.textContent = 'Could not render it: ' + (data.error || 'no answer');
    status.className = 'field-msg';
  });
  audio.addEventListener('loadeddata', () => { status.className = 'hint'; status.textContent = `${audio.duration.toFixed(1)} s, as the zone hears it.`; });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (what.value === 'text') q.set('text', document.getElementById('hear-text').value);
    else q.set('slot', what.value.slice(5));
    const zone = document.getElementById('hear-zone').value;
    if (zone) q.set('zone', zone);
    status.className = 'hint';
    status.textContent = 'Rendering…';
    audio.src = '/api/v1/hear?' + q.toString();
    audio.play().catch(() => {});
  });
})();
