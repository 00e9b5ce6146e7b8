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
