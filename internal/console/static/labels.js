// Recorded labels: upload (PUT audio/wav) and delete (DELETE) through
// /api/v1/labels, then refresh the table from the page's own HTML (no
// reload, so the message about what happened stays).
(() => {
  'use strict';
  const status = document.getElementById('labels-status');
  const say = (msg, bad) => { if (status) { status.textContent = msg; status.classList.toggle('bad', !!bad); } };
  const target = (el) => {
    const cell = el.closest('td[data-kind]');
    return { slot: el.closest('tr[data-slot]').dataset.slot, kind: cell.dataset.kind };
  };
  const call = async (method, t, body, type) => {
    const r = await fetch(`/api/v1/labels/${encodeURIComponent(t.slot)}/${t.kind}`, {
      method, headers: { 'Content-Type': type, Accept: 'application/json' }, body,
    });
    if (r.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); return false; }
    if (!r.ok) {
      let msg = r.status + '';
      try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
      say(`Slot ${t.slot}, ${t.kind}: ${msg}`, true);
      return false;
    }
    return true;
  };
  const refresh = async (msg) => {
    const r = await fetch(location.pathname, { cache: 'no-store' });
    if (!r.ok) { location.reload(); return; }
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    const fresh = doc.querySelector('.labels-table tbody');
    const old = document.querySelector('.labels-table tbody');
    if (fresh && old) old.replaceWith(fresh); else location.reload();
    say(msg);
  };
  document.addEventListener('change', async (e) => {
    const input = e.target.closest('input[data-upload]');
    if (!input || !input.files.length) return;
    const t = target(input);
    say(`Uploading the ${t.kind} for slot ${t.slot}…`);
    const ok = await call('PUT', t, input.files[0], 'audio/wav');
    input.value = '';
    if (ok) await refresh(`Slot ${t.slot}: ${t.kind} saved.`);
  });
  document.addEventListener('click', async (e) => {
    const btn = e.target.closest('button[data-delete]');
    if (!btn) return;
    const t = target(btn);
    if (!confirm(`Delete the recorded ${t.kind} of slot ${t.slot}? Announcements go back to the synthetic voice.`)) return;
    if (await call('DELETE', t, null, 'application/json')) await refresh(`Slot ${t.slot}: recorded ${t.kind} deleted.`);
  });
})();
