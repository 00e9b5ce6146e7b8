// beamd's dashboard: one page on the edge's API listener, no dependencies,
// no build step. It signs in with a key (or an account's email and
// password), keeps the token in session storage only, reads the REST API,
// and listens to /api/v1/events/stream to refresh what changed.
'use strict';

const TOKEN_KEY = 'beamd.token';
const main = document.getElementById('main');
let feed = null;
let refreshTimer = null;
let lastSeq = null;
let signedIn = false;
// A page that keeps state the user is working on (a secret shown once, a
// form) refreshes only its list on live events, through this.
let liveRefresh = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + token() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch('/api/v1' + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', 'The edge cannot be reached: ' + e.message);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!res.ok) {
    const message = data && data.message ? data.message : res.status + ' ' + res.statusText;
    if (res.status === 401 && signedIn) signOut('Your session ended: ' + message);
    throw new ApiError(res.status, data && data.error, message);
  }
  return data;
}

function notice(message, kind) {
  const n = document.getElementById('notice');
  n.textContent = message || '';
  n.className = kind || '';
  n.hidden = !message;
}

function bytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i];
}

function when(iso) { return iso ? new Date(iso).toLocaleString() : '—'; }

function meter(label, used, limit, format) {
  const f = format || String;
  const pct = limit ? Math.min(100, (used / limit) * 100) : 0;
  return h('div', { class: 'meter', 'data-meter': label },
    h('div', {}, label + ': ', h('strong', {}, f(used)), limit ? ' of ' + f(limit) : h('span', { class: 'muted' }, ' (no limit)')),
    h('div', { class: 'bar' }, h('div', { class: 'fill' + (pct >= 100 ? ' over' : ''), style: 'width:' + pct + '%' })));
}

// A button that asks for a second click before doing something destructive.
function confirmButton(label, action, attrs) {
  const b = h('button', Object.assign({ class: 'danger', type: 'button' }, attrs || {}), label);
  b.addEventListener('click', async () => {
    if (!b.classList.contains('confirm')) {
      b.classList.add('confirm');
      b.textContent = 'Confirm ' + label.toLowerCase();
      setTimeout(() => { b.classList.remove('confirm'); b.textContent = label; }, 4000);
      return;
    }
    b.disabled = true;
    try { await action(); } catch (e) { notice(e.message); b.disabled = false; }
  });
  return b;
}

function table(headers, rows) {
  return h('div', { class: 'table-wrap' },
    h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows)));
}

// ---- pages ----

async function overview() {
  const [ws, usage, tunnels, nodes] = await Promise.all([
    api('GET', '/workspace'), api('GET', '/usage?days=30'),
    api('GET', '/tunnels?limit=200'), api('GET', '/nodes').catch((e) => ({ error: e.message })),
  ]);
  const online = tunnels.tunnels.filter((t) => t.status === 'online').length;
  return [
    h('h1', {}, ws.name || ws.slug),
    h('div', { class: 'grid' },
      h('section', { class: 'card', id: 'plan' },
        h('h2', {}, 'Plan: ', h('span', { id: 'plan-name' }, usage.plan)),
        meter('Tunnels', usage.used.tunnels, usage.limits.tunnels),
        meter('Domains', usage.used.domains, usage.limits.domains),
        meter('Bandwidth this month', usage.used.bandwidthBytes, usage.limits.bandwidthBytes, bytes)),
      h('section', { class: 'card' },
        h('h2', {}, 'Tunnels online'),
        h('div', { id: 'tunnels-online', style: 'font-size:2rem;font-weight:700' }, String(online)),
        h('div', { class: 'muted' }, tunnels.tunnels.length + ' held · ' + bytes(usage.totalBytes) + ' in 30 days · peak ' + usage.peakTunnels)),
      h('section', { class: 'card' },
        h('h2', {}, 'Nodes'),
        nodes.error ? h('div', { class: 'muted' }, nodes.error)
          : h('ul', { id: 'nodes' }, nodes.nodes.map((n) => h('li', {}, h('span', { class: 'status-' + n.status }, n.status), ' ', n.id, ' ', h('span', { class: 'muted' }, n.transports.join(', '))))))),
  ];
}

function chart(series) {
  const W = 720, H = 220, pad = 28;
  const maxBytes = Math.max(1, ...series.map((d) => d.bytes));
  const maxPeak = Math.max(1, ...series.map((d) => d.peakTunnels));
  const slot = (W - pad) / series.length;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('id', 'usage-chart');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'bytes and peak tunnels per day');
  const el = (tag, attrs, text) => {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    svg.append(e);
    return e;
  };
  series.forEach((d, i) => {
    const hgt = ((H - pad) * d.bytes) / maxBytes;
    const x = pad + i * slot;
    const bar = el('rect', { class: 'bar', x: x + slot * 0.1, y: H - pad - hgt, width: Math.max(1, slot * 0.8), height: hgt, 'data-day': d.day, 'data-bytes': d.bytes });
    const title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    title.textContent = d.day.slice(0, 10) + ': ' + bytes(d.bytes) + ', peak ' + d.peakTunnels + ' tunnels';
    bar.append(title);
    el('circle', { class: 'peak', cx: x + slot / 2, cy: H - pad - ((H - pad) * d.peakTunnels) / maxPeak, r: 2.5 });
  });
  el('line', { class: 'axis', x1: pad, y1: H - pad + 0.5, x2: W, y2: H - pad + 0.5 });
  el('text', { x: 2, y: 10 }, bytes(maxBytes));
  el('text', { x: pad, y: H - 8 }, series.length ? series[0].day.slice(0, 10) : '');
  el('text', { x: W - 70, y: H - 8 }, series.length ? series[series.length - 1].day.slice(0, 10) : '');
  return svg;
}

async function usagePage() {
  const days = Number(sessionStorage.getItem('beamd.days') || 30);
  const u = await api('GET', '/usage?days=' + days);
  const pick = (n) => h('button', { type: 'button', 'data-days': n, class: n === days ? 'active' : '', onclick: () => { sessionStorage.setItem('beamd.days', n); render(); } }, n + ' days');
  return [
    h('h1', {}, 'Usage'),
    h('div', { class: 'segmented' }, pick(7), ' ', pick(30), ' ', pick(90)),
    h('section', { class: 'card' },
      h('div', { class: 'muted' }, bytes(u.totalBytes) + ' in ' + days + ' days · peak ' + u.peakTunnels + (u.peakTunnels === 1 ? ' tunnel · ' : ' tunnels · ') + u.eventCount + ' events · last seen ' + when(u.lastSeen)),
      chart(u.series),
      h('div', { class: 'muted' }, 'Bars: bytes per day. Dots: most tunnels online at once.')),
  ];
}

async function tunnelsPage() {
  const list = await api('GET', '/tunnels?limit=200');
  const rows = list.tunnels.map((t) => h('tr', { 'data-tunnel-id': t.id, 'data-status': t.status },
    h('td', {}, t.name || t.id), h('td', { class: 'status-' + t.status }, t.status),
    h('td', {}, t.publicUrl || (t.port ? 'port ' + t.port : '—')), h('td', {}, t.transport || '—'),
    h('td', {}, bytes(t.bytesIn + t.bytesOut)), h('td', {}, t.protocol),
    h('td', {}, confirmButton('Release', async () => { await api('DELETE', '/tunnels/' + t.id); notice('Released ' + (t.name || t.id), 'info'); render(); }, { 'data-release': t.id }))));
  return [h('h1', {}, 'Tunnels'), list.tunnels.length ? table(['tunnel', 'status', 'public', 'transport', 'bytes', 'protocol', ''], rows) : h('p', { class: 'muted', id: 'no-tunnels' }, 'No tunnels yet: run `beamd http 3000` with one of your tokens.')];
}

const filters = { status: '', path: '', tunnel: '' };
let selectedSeq = null;

async function inspectorPage() {
  const list = await api('GET', '/requests?limit=200');
  const tunnels = [...new Set(list.requests.map((r) => r.tunnel))];
  const shown = list.requests.filter((r) => (!filters.status || String(r.status).startsWith(filters.status))
    && (!filters.path || r.path.includes(filters.path)) && (!filters.tunnel || r.tunnel === filters.tunnel));
  const detail = h('section', { class: 'card', id: 'request-detail', hidden: true });
  const show = (r) => {
    selectedSeq = r.seq;
    detail.hidden = false;
    detail.replaceChildren(h('h2', {}, r.method + ' ' + r.path), h('pre', {}, JSON.stringify(r, null, 2)));
  };
  const rows = shown.map((r) => {
    const tr = h('tr', { class: 'clickable' + (r.seq === selectedSeq ? ' selected' : ''), 'data-seq': r.seq, 'data-path': r.path },
      h('td', {}, when(r.at)), h('td', {}, r.method), h('td', {}, r.path), h('td', {}, r.status),
      h('td', {}, r.durationMs + ' ms'), h('td', {}, r.host), h('td', {}, bytes(r.bytes)));
    tr.addEventListener('click', () => show(r));
    return tr;
  });
  const chosen = list.requests.find((r) => r.seq === selectedSeq);
  if (chosen) show(chosen);
  const input = (key, placeholder) => h('input', { value: filters[key], placeholder, 'data-filter': key, oninput: (e) => { filters[key] = e.target.value; scheduleRefresh(250); } });
  const select = h('select', { 'data-filter': 'tunnel', onchange: (e) => { filters.tunnel = e.target.value; render(); } },
    h('option', { value: '' }, 'all tunnels'), tunnels.map((t) => h('option', { value: t, selected: t === filters.tunnel }, t)));
  return [
    h('h1', {}, 'Inspector'),
    h('form', { class: 'inline', onsubmit: (e) => e.preventDefault() }, input('status', 'status (e.g. 5)'), input('path', 'path contains'), select),
    shown.length ? table(['at', 'method', 'path', 'status', 'time', 'host', 'bytes'], rows) : h('p', { class: 'muted', id: 'no-requests' }, 'No requests yet.'),
    detail,
  ];
}

async function tokensPage() {
  const list = await api('GET', '/tokens?limit=200');
  const created = h('div', { id: 'token-created' });
  const label = h('input', { id: 'token-label', placeholder: 'label', maxlength: 64 });
  const limit = h('input', { id: 'token-limit', placeholder: 'byte limit (optional)', inputmode: 'numeric' });
  const form = h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    const body = { label: label.value || undefined };
    if (limit.value) body.limitBytes = Number(limit.value);
    try {
      const t = await api('POST', '/tokens', body);
      const code = h('code', { id: 'token-secret' }, t.token);
      const copy = h('button', { type: 'button', class: 'secondary', id: 'token-copy', onclick: async () => {
        try { await navigator.clipboard.writeText(t.token); copy.textContent = 'Copied'; } catch (_) { getSelection().selectAllChildren(code); copy.textContent = 'Selected: press Ctrl+C'; }
      } }, 'Copy');
      created.replaceChildren(h('div', { class: 'secret' }, h('strong', {}, 'Shown once:'), code, copy));
      label.value = ''; limit.value = '';
      await refreshList();
    } catch (err) { notice(err.message); }
  } }, label, limit, h('button', { id: 'token-create', type: 'submit' }, 'Create token'));
  const listBox = h('div', { id: 'token-list' });
  let shown = JSON.stringify(list.tokens);
  // Rebuilt only when something changed, so that a live event about a
  // change already shown does not replace the inputs under the user.
  async function refreshList() {
    const l = await api('GET', '/tokens?limit=200');
    const now = JSON.stringify(l.tokens);
    if (now === shown) return;
    shown = now;
    listBox.replaceChildren(tokenTable(l.tokens));
  }
  function tokenTable(tokens) {
    return table(['label', 'id', 'scopes', 'used', 'limit', 'last used', ''], tokens.map((t) => h('tr', { 'data-token-id': t.id, 'data-revoked': t.revokedAt ? 'yes' : 'no' },
      h('td', {}, t.label), h('td', {}, h('code', {}, t.id)), h('td', {}, t.scopes.join(', ')), h('td', {}, bytes(t.bytesUp + t.bytesDown)),
      h('td', {}, t.revokedAt ? (t.limitBytes == null ? '—' : bytes(t.limitBytes)) : limitForm(t)), h('td', {}, when(t.lastUsedAt)),
      h('td', {}, t.revokedAt ? h('span', { class: 'muted' }, 'revoked') : confirmButton('Revoke', async () => { await api('DELETE', '/tokens/' + t.id); notice('Revoked ' + t.id, 'info'); await refreshList(); }, { 'data-revoke': t.id })))));
  }
  // The byte limit bound to a key: a number of bytes, or empty for none.
  function limitForm(t) {
    const input = h('input', { 'data-limit': t.id, size: 10, inputmode: 'numeric', value: t.limitBytes == null ? '' : t.limitBytes, placeholder: 'no limit', 'aria-label': 'byte limit' });
    return h('form', { class: 'inline', onsubmit: async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (text && !/^[0-9]+$/.test(text)) { notice('A byte limit is a whole number of bytes, or empty for none.'); return; }
      try {
        await api('PUT', '/tokens/' + t.id + '/limit', { limitBytes: text ? Number(text) : null });
        notice(text ? 'Limited ' + t.id + ' to ' + bytes(Number(text)) : 'Removed the limit of ' + t.id, 'info');
        await refreshList();
      } catch (err) { notice(err.message); }
    } }, input, h('button', { type: 'submit', class: 'secondary', 'data-set-limit': t.id }, 'Set'));
  }
  listBox.append(tokenTable(list.tokens));
  liveRefresh = refreshList;
  return [h('h1', {}, 'Tokens'), h('section', { class: 'card' }, h('h2', {}, 'New token'), form, created), listBox];
}

async function domainsPage() {
  const list = await api('GET', '/domains?limit=200');
  const host = h('input', { id: 'domain-host', placeholder: 'app.example.com' });
  const added = h('div', { id: 'domain-added' });
  const form = h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const d = await api('POST', '/domains', { host: host.value });
      added.replaceChildren(txt(d));
      host.value = '';
      render();
    } catch (err) { notice(err.message); }
  } }, host, h('button', { type: 'submit', id: 'domain-add' }, 'Add domain'));
  const txt = (d) => h('div', { class: 'secret' }, 'Publish a TXT record ', h('code', {}, d.txt.name), ' with the value ', h('code', {}, d.txt.value));
  const rows = list.domains.map((d) => h('tr', { 'data-domain-id': d.id },
    h('td', {}, d.host), h('td', { class: 'status-' + d.status }, d.status, d.failure ? h('div', { class: 'muted' }, d.failure) : null),
    h('td', {}, h('code', {}, d.txt.name), h('br'), h('code', {}, d.txt.value)),
    h('td', {}, d.status === 'verified' ? null : h('button', { type: 'button', class: 'secondary', onclick: async () => {
      try { const v = await api('POST', '/domains/' + d.id + '/verify'); notice(v.status === 'verified' ? d.host + ' is verified' : 'Not yet: ' + (v.failure || v.status), v.status === 'verified' ? 'info' : ''); render(); } catch (err) { notice(err.message); }
    } }, 'Verify'), ' ', confirmButton('Remove', async () => { await api('DELETE', '/domains/' + d.id); render(); }))));
  return [h('h1', {}, 'Domains'), h('section', { class: 'card' }, h('h2', {}, 'Add a domain'), form, added),
    list.domains.length ? table(['host', 'status', 'TXT record', ''], rows) : h('p', { class: 'muted' }, 'No custom domains.')];
}

const pages = { overview, usage: usagePage, tunnels: tunnelsPage, inspector: inspectorPage, tokens: tokensPage, domains: domainsPage };
// Which event types each page shows.
const watches = {
  overview: /^(Tunnel|Tenant|Domain|Traffic|Node)/, usage: /^(Traffic|Tunnel)/, tunnels: /^(Tunnel|Traffic)/,
  inspector: /^Request/, tokens: /^Key/, domains: /^Domain/,
};

function page() { const p = (location.hash.replace(/^#\/?/, '') || 'overview'); return pages[p] ? p : 'overview'; }

let rendering = 0;
async function render() {
  if (!token()) return signInPage();
  const name = page();
  const mine = ++rendering;
  liveRefresh = null;
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === '#/' + name));
  try {
    const content = await pages[name]();
    if (mine !== rendering) return;
    const focused = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.filter;
    main.replaceChildren(...content);
    main.dataset.page = name;
    if (focused) { const f = main.querySelector('[data-filter="' + focused + '"]'); if (f) { f.focus(); if (f.setSelectionRange && f.value) f.setSelectionRange(f.value.length, f.value.length); } }
  } catch (e) {
    if (mine === rendering && token()) main.replaceChildren(h('p', { class: 'error' }, 'Could not load this page: ' + e.message));
  }
}

function scheduleRefresh(delay) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(render, delay === undefined ? 300 : delay);
}

// A live event: refresh what the page shows, but not under someone typing
// into one of its forms (filters excepted: they refresh as they change).
function liveUpdate() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    const a = document.activeElement;
    const editing = a && main.contains(a) && /^(INPUT|SELECT|TEXTAREA)$/.test(a.tagName) && !a.dataset.filter;
    if (editing) return liveUpdate();
    (liveRefresh || render)().catch((e) => notice(e.message));
  }, 300);
}

// Server-sent events read with fetch, so that the token travels in a header.
async function listen() {
  const mine = feed = new AbortController();
  const live = document.getElementById('live');
  while (feed === mine && token()) {
    try {
      const query = lastSeq === null ? '' : '?after=' + lastSeq;
      const res = await fetch('/api/v1/events/stream' + query, { headers: { Authorization: 'Bearer ' + token() }, signal: mine.signal });
      if (!res.ok) throw new Error(res.status);
      live.classList.add('on');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let type = null, id = null;
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('id:')) id = line.slice(3).trim();
          }
          if (id !== null) lastSeq = Number(id);
          if (type && watches[page()].test(type)) liveUpdate();
        }
      }
    } catch (e) {
      if (mine.signal.aborted) return;
    }
    live.classList.remove('on');
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function signInPage() {
  document.getElementById('nav').hidden = true;
  document.getElementById('sign-out').hidden = true;
  document.getElementById('who').textContent = '';
  const tokenInput = h('input', { id: 'token-input', type: 'password', autocomplete: 'off', placeholder: 'tok_….…' });
  const email = h('input', { id: 'email-input', type: 'email', autocomplete: 'username' });
  const password = h('input', { id: 'password-input', type: 'password', autocomplete: 'current-password' });
  const start = async (t) => {
    sessionStorage.setItem(TOKEN_KEY, t);
    try { await begin(); } catch (e) { sessionStorage.removeItem(TOKEN_KEY); notice('Sign-in refused: ' + e.message); }
  };
  main.replaceChildren(h('div', { class: 'signin' },
    h('section', { class: 'card' }, h('h1', {}, 'Sign in with a token'),
      h('form', { onsubmit: (e) => { e.preventDefault(); start(tokenInput.value.trim()); } },
        h('label', { for: 'token-input' }, 'API token'), tokenInput, h('button', { id: 'sign-in', type: 'submit' }, 'Sign in'))),
    h('section', { class: 'card' }, h('h2', {}, 'or with your account'),
      h('form', { onsubmit: async (e) => {
        e.preventDefault();
        try {
          const res = await fetch('/api/v1/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: email.value, password: password.value }) });
          const data = await res.json().catch(() => ({}));
          if (!res.ok) throw new Error(data.message || res.statusText);
          start(data.token);
        } catch (err) { notice(err.message); }
      } }, h('label', { for: 'email-input' }, 'Email'), email, h('label', { for: 'password-input' }, 'Password'), password,
        h('button', { type: 'submit', class: 'secondary' }, 'Sign in')))));
  tokenInput.focus();
}

async function begin() {
  const me = await api('GET', '/me');
  signedIn = true;
  notice('');
  document.getElementById('who').textContent = me.name + ' · ' + me.plan;
  document.getElementById('nav').hidden = false;
  document.getElementById('sign-out').hidden = false;
  if (!location.hash) location.hash = '#/overview';
  await render();
  listen();
}

function signOut(message) {
  signedIn = false;
  sessionStorage.removeItem(TOKEN_KEY);
  if (feed) feed.abort();
  feed = null;
  lastSeq = null;
  signInPage();
  if (message) notice(message);
}

document.getElementById('sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => { notice(''); render(); });
if (token()) begin().catch((e) => signOut(e.message)); else signInPage();
