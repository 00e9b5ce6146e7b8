// beamd's dashboard, its pages: each renders one view from the REST API and
// returns the nodes to show. Loaded before app.js, whose helpers (h, api,
// bytes, when, meter, table, confirmButton, notice) they use.
'use strict';

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
    h('td', {}, t.name || t.id), h('td', { class: 'status-' + t.status }, t.status + (t.pool ? ' · pool of ' + t.members.filter((m) => m.status === 'serving').length : '')),
    h('td', {}, t.publicUrl || (t.port ? 'port ' + t.port : '—')), h('td', {}, t.transport || '—'),
    h('td', {}, bytes(t.bytesIn + t.bytesOut)), h('td', {}, t.protocol === 'udp' ? 'udp · ' + t.datagrams + ' datagrams' : t.protocol),
    h('td', {}, confirmButton('Release', async () => { await api('DELETE', '/tunnels/' + t.id); notice('Released ' + (t.name || t.id), 'info'); render(); }, { 'data-release': t.id }))));
  // A pool's members (serving, then those that left) and each one's share of its traffic.
  const pools = list.tunnels.filter((t) => t.pool).map((t) => h('section', { class: 'card', 'data-pool': t.id },
    h('h2', {}, 'Pool ' + (t.name || 'port ' + t.port) + ': ' + t.members.filter((m) => m.status === 'serving').length + ' serving'),
    table(['member', 'status', 'node', 'transport', 'agent', 'requests', 'connections', 'bytes'],
      t.members.map((m) => h('tr', { 'data-member': m.id, 'data-status': m.status },
        h('td', {}, m.id), h('td', { class: m.status === 'serving' ? 'status-online' : 'status-offline' }, m.status),
        h('td', {}, m.node || '—'), h('td', {}, m.transport || '—'), h('td', {}, m.peer || '—'),
        h('td', {}, String(m.requests)), h('td', {}, String(m.connections)), h('td', {}, bytes(m.bytesIn + m.bytesOut)))))));
  return [h('h1', {}, 'Tunnels'), list.tunnels.length ? table(['tunnel', 'status', 'public', 'transport', 'bytes', 'protocol', ''], rows) : h('p', { class: 'muted', id: 'no-tunnels' }, 'No tunnels yet: run `beamd http 3000` with one of your tokens.'), ...pools];
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
