// The inspector page: recent requests (filtered), one request's detail
// (headers, bodies with JSON pretty-printed) and its replay through the
// tunnel; the replay appears live in the list and is selected.
'use strict';

const filters = { status: '', path: '', tunnel: '' };
let selectedName = null;
let editorOpen = false;

// A request's name in the API: its id (its seq for requests captured before
// every one had an id; the requests of one window share their event's seq).
const nameOf = (r) => r.id || String(r.seq);

function pretty(body) {
  if (body.encoding !== 'utf8') return body.data;
  try {
    const v = JSON.parse(body.data);
    if (v !== null && typeof v === 'object') return JSON.stringify(v, null, 2);
  } catch (_) { /* not JSON: shown as is */ }
  return body.data;
}

function headerList(title, headers, id) {
  return [h('h3', {}, title), h('table', { class: 'headers', id },
    h('tbody', {}, (headers || []).map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))))];
}

function bodyBlock(title, body, id) {
  if (!body) return [];
  const note = body.truncated ? ' (first ' + bytes(body.data.length) + ' of ' + bytes(body.len) + ')' : (body.encoding === 'base64' ? ' (base64)' : '');
  return [h('h3', {}, title + note), h('pre', { id }, pretty(body))];
}

async function replay(r, edits) {
  const result = await api('POST', '/requests/' + nameOf(r) + '/replay', edits);
  const captured = result.request ? ': captured as ' + nameOf(result.request) : '';
  notice('Replayed ' + r.method + ' ' + r.path + ' → ' + result.status + captured, 'info');
  if (result.request) selectedName = nameOf(result.request);
  render();
}

function editor(r, d) {
  const method = h('input', { value: r.method, 'data-edit': 'method', size: 7 });
  const path = h('input', { value: r.path, 'data-edit': 'path' });
  const body = h('textarea', { 'data-edit': 'body', rows: 6 }, d.requestBody && d.requestBody.encoding === 'utf8' ? d.requestBody.data : '');
  const send = h('button', { type: 'submit', class: 'secondary', id: 'replay-edited' }, 'Replay edited');
  const form = h('form', { class: 'stack', onsubmit: async (e) => {
    e.preventDefault();
    send.disabled = true;
    try { await replay(r, { method: method.value, path: path.value, body: body.value }); } catch (err) { notice(err.message); send.disabled = false; }
  } }, h('div', { class: 'inline' }, method, path), body, send);
  return h('details', { id: 'replay-editor', open: editorOpen, ontoggle: (e) => { editorOpen = e.target.open; } }, h('summary', {}, 'Edit and replay'), form);
}

async function showDetail(section, r) {
  let d;
  try { d = await api('GET', '/requests/' + nameOf(r)); } catch (e) { section.replaceChildren(h('p', {}, e.message)); return; }
  if (selectedName !== nameOf(r)) return;
  const facts = [when(r.at), r.status, r.durationMs + ' ms', bytes(r.bytes), r.ip];
  if (r.member) facts.push('served by pool member ' + r.member);
  if (r.user) facts.push('signed in as ' + r.user);
  const kids = [h('h2', {}, r.method + ' ' + r.path), h('p', { class: 'muted' }, facts.join(' · '))];
  if (r.replayOf) kids.push(h('p', { id: 'replay-of' }, 'A replay of request ' + r.replayOf));
  if (r.refused) {
    kids.push(h('p', { class: 'muted', id: 'refused' }, 'Refused by the edge (' + r.refused + '): it never reached the service, and has no body.'));
  } else if (d.detail === 'stored') {
    const button = h('button', { type: 'button', id: 'replay-button' }, 'Replay');
    button.addEventListener('click', async () => {
      button.disabled = true;
      try { await replay(r, undefined); } catch (e) { notice(e.message); button.disabled = false; }
    });
    kids.push(h('div', { class: 'inline' }, button), editor(r, d),
      ...headerList('Request headers', d.requestHeaders, 'request-headers'), ...bodyBlock('Request body', d.requestBody, 'request-body'),
      ...headerList('Response headers', d.responseHeaders, 'response-headers'), ...bodyBlock('Response body', d.responseBody, 'response-body'));
  } else {
    const why = d.detail === 'pruned' ? 'Headers and bodies were pruned from the body store (size cap or time to live).'
      : 'Headers and bodies are not captured for this tunnel.';
    const full = h('button', { type: 'button', class: 'secondary', id: 'capture-full' }, 'Capture full from now on');
    full.addEventListener('click', async () => {
      try { await api('PATCH', '/tunnels/' + r.tunnel, { inspect: 'full' }); notice('Full capture is on for ' + r.tunnel + ' (new requests).', 'info'); } catch (e) { notice(e.message); }
    });
    kids.push(h('p', { class: 'muted', id: 'no-detail' }, why), d.detail === 'notCaptured' ? full : null);
  }
  section.replaceChildren(...kids);
}

async function inspectorPage() {
  const list = await api('GET', '/requests?limit=200');
  const tunnels = [...new Set(list.requests.map((r) => r.tunnel))];
  const shown = list.requests.filter((r) => (!filters.status || String(r.status).startsWith(filters.status))
    && (!filters.path || r.path.includes(filters.path)) && (!filters.tunnel || r.tunnel === filters.tunnel));
  const detail = h('section', { class: 'card', id: 'request-detail', hidden: true });
  const show = (r) => {
    selectedName = nameOf(r);
    detail.hidden = false;
    detail.setAttribute('data-name', nameOf(r));
    detail.replaceChildren(h('h2', {}, r.method + ' ' + r.path));
    for (const tr of document.querySelectorAll('tr[data-name]')) tr.classList.toggle('selected', tr.dataset.name === nameOf(r));
    showDetail(detail, r);
  };
  const rows = shown.map((r) => {
    const tr = h('tr', { class: 'clickable' + (nameOf(r) === selectedName ? ' selected' : ''), 'data-name': nameOf(r), 'data-seq': r.seq, 'data-path': r.path, 'data-replay-of': r.replayOf },
      h('td', {}, when(r.at)), h('td', {}, r.method), h('td', {}, r.path + (r.replayOf ? ' ↻' : '')), h('td', {}, r.refused ? r.status + ' ' + r.refused : r.status),
      h('td', {}, r.durationMs + ' ms'), h('td', {}, r.host), h('td', {}, bytes(r.bytes)));
    tr.addEventListener('click', () => show(r));
    return tr;
  });
  const chosen = list.requests.find((r) => nameOf(r) === selectedName);
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
