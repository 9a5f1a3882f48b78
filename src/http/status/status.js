// @ts-check
// The status page script: renders the snapshot from /status/events and keeps it current from the
// same server-sent event stream. Plain browser JavaScript, no build step. Every value from the
// server is inserted as text (never as HTML): event summaries come from network input.

/**
 * @typedef {{ id: number, topic: string, deliveredAt: number | null }} ActivityMessage
 * @typedef {{ id: number, type: 'event' | 'message', at: number, source: string, summary: string,
 *   state: string, reason: string | null, messages: ActivityMessage[] }} ActivityEntry
 * @typedef {{ enabled: boolean, connected?: boolean, address?: string, reconnects?: number,
 *   reachable?: boolean | null, lastError?: string | null, lastErrorAt?: number | null, lastSuccessAt?: number | null }} Connection
 * @typedef {{ version: string, host: string, clientId: string, startedAt: number, now: number, ready: boolean,
 *   reasons: string[], broker: Connection, cloudBroker: Connection, qrs: Connection,
 *   outbox: { depth: number, bytes: number, maxMessages: number, maxBytes: number, oldestAgeSeconds: number } | null,
 *   inbox: { depth: number, oldestAgeSeconds: number, quarantined: number } | null,
 *   udp: { address: string, kernelDrops: number | null } | null,
 *   totals: Record<string, number>, testEvent: { enabled: boolean, via?: string, tokenRequired?: boolean },
 *   deadLetters?: DeadLetters | null, ha?: Ha | null }} Status
 * @typedef {{ instanceId: string, priority: number, role: string, since: number, held: number,
 *   peers: { instanceId: string, priority: number, role: string, live: boolean, lastHeard: number }[] }} Ha
 * @typedef {{ count: number, latest: { id: number, topic: string, kind: string, movedAt: number, attempts: number, reason: string }[] }} DeadLetters
 */

const MAX_ROWS = 100;
/** @type {Map<number, ActivityEntry>} */
const entries = new Map();
let testWired = false;

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing element #${id}`);
  return el;
}

/**
 * @param {string} tag
 * @param {string} [className]
 * @param {string} [text]
 */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {number} n */
function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}

/** @param {number} bytes */
function fmtBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** @param {number} seconds */
function fmtDuration(seconds) {
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

/** @param {number} ms */
function fmtTime(ms) {
  const d = new Date(ms);
  const p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * @param {string} cardId
 * @param {string} state  ok | bad | warn | off | unknown
 * @param {string} label
 * @param {string} detail
 */
function setCard(cardId, state, label, detail) {
  const card = byId(cardId);
  const stateEl = /** @type {HTMLElement} */ (card.querySelector('.state'));
  const detailEl = /** @type {HTMLElement} */ (card.querySelector('.detail'));
  stateEl.dataset.state = state;
  stateEl.textContent = label;
  detailEl.textContent = detail;
  card.dataset.state = state;
}

/** @param {Status} s */
function renderStatus(s) {
  byId('subtitle').textContent = `${s.host} · client ID ${s.clientId}`;
  const readiness = byId('readiness');
  readiness.dataset.state = s.ready ? 'ok' : 'bad';
  readiness.textContent = s.ready ? 'Ready' : 'Not ready';
  readiness.title = s.reasons.join('; ');

  const b = s.broker;
  if (!b.enabled) setCard('card-broker', 'off', 'MQTT disabled', 'Butler.mqttConfig.enable is false');
  else setCard('card-broker', b.connected ? 'ok' : 'bad', b.connected ? 'Connected' : 'Disconnected', `${b.address} · ${fmtInt(b.reconnects ?? 0)} reconnects`);

  const c = s.cloudBroker;
  if (!c.enabled) setCard('card-cloud', 'off', 'Not configured', 'Qlik Cloud event forwarding is off');
  else setCard('card-cloud', c.connected ? 'ok' : 'bad', c.connected ? 'Connected' : 'Disconnected', c.address ?? '');

  const q = s.qrs;
  if (!q.enabled) setCard('card-qrs', 'off', 'Not configured', 'Butler.configQRS.host is empty');
  else if (q.reachable === null) setCard('card-qrs', 'unknown', 'Not contacted yet', q.address ?? '');
  else if (q.reachable) setCard('card-qrs', 'ok', 'Reachable', `${q.address} · last answer ${q.lastSuccessAt ? fmtTime(q.lastSuccessAt) : '—'}`);
  else setCard('card-qrs', 'bad', 'Unreachable', `${q.address} · ${q.lastError ?? ''}`);

  const o = s.outbox;
  if (!o) setCard('card-outbox', 'off', '—', 'MQTT disabled');
  else {
    const full = Math.max(o.depth / o.maxMessages, o.bytes / o.maxBytes);
    const state = o.depth === 0 ? 'ok' : full >= 0.8 ? 'bad' : 'warn';
    const label = o.depth === 0 ? 'Empty' : `${fmtInt(o.depth)} waiting`;
    const oldest = o.depth > 0 ? ` · oldest ${fmtDuration(o.oldestAgeSeconds)}` : '';
    const inbox = s.inbox && s.inbox.depth > 0 ? ` · ${fmtInt(s.inbox.depth)} events in progress` : '';
    const quarantined = s.inbox && s.inbox.quarantined > 0 ? ` · ${fmtInt(s.inbox.quarantined)} events quarantined (butler-mqtt inbox list)` : '';
    setCard('card-outbox', quarantined ? 'bad' : state, label, `${fmtBytes(o.bytes)} of ${fmtBytes(o.maxBytes)}${oldest}${inbox}${quarantined}`);
  }

  renderDeadLetters(s.deadLetters ?? null);
  renderHa(s.ha ?? null);

  for (const key of ['received', 'accepted', 'rejected', 'delivered', 'refused']) byId(`t-${key}`).textContent = fmtInt(s.totals[key] ?? 0);
  const drops = s.udp && s.udp.kernelDrops ? ` (${fmtInt(s.udp.kernelDrops)} datagrams dropped by the kernel: receive buffer too small)` : '';
  const udp = s.udp ? ` · UDP ${s.udp.address}${drops}` : '';
  byId('footer-left').textContent = `butler-mqtt ${s.version} · up ${fmtDuration((s.now - s.startedAt) / 1000)}${udp}`;
  renderTestButton(s);
}

/** The pair's card, shown only with Butler.highAvailability on. @param {Ha | null} h */
function renderHa(h) {
  const card = byId('card-ha');
  card.hidden = !h;
  if (!h) return;
  const peers = h.peers.length === 0 ? 'no other instance heard' : h.peers.map((p) => `${p.instanceId}: ${p.live ? p.role : 'offline'} (priority ${p.priority})`).join(', ');
  const held = h.role === 'active' ? '' : ` · ${fmtInt(h.held)} alerts held`;
  const label = h.role === 'active' ? 'Active' : h.role === 'standby' ? 'Standby' : 'Deciding';
  const live = h.peers.some((p) => p.live);
  setCard('card-ha', h.role === 'starting' ? 'unknown' : live ? 'ok' : 'warn', label, `${h.instanceId} (priority ${h.priority}) since ${fmtTime(h.since)}${held} · ${peers}`);
}

/** Shown only while the dead-letter table holds something. @param {DeadLetters | null} d */
function renderDeadLetters(d) {
  const section = byId('dead-letters');
  section.hidden = !d || d.count === 0;
  if (!d || d.count === 0) return;
  byId('dead-title').textContent = `Dead letters: ${fmtInt(d.count)}`;
  const body = byId('dead-body');
  body.replaceChildren(
    ...d.latest.map((r) => {
      const tr = el('tr');
      tr.append(el('td', 'c-time', fmtTime(r.movedAt)), el('td', 'c-source', String(r.id)), el('td', '', r.topic), el('td', '', `${r.reason} · ${r.kind}`));
      return tr;
    }),
  );
}

/** @param {Status} s */
function renderTestButton(s) {
  const box = byId('test-actions');
  box.hidden = !s.testEvent.enabled;
  if (!s.testEvent.enabled || testWired) return;
  testWired = true;
  const token = /** @type {HTMLInputElement} */ (byId('test-token'));
  token.hidden = !s.testEvent.tokenRequired;
  const button = /** @type {HTMLButtonElement} */ (byId('test-button'));
  button.title = s.testEvent.via === 'udp' ? 'Sends a reload-failed datagram (task "butler-mqtt test event") to the UDP input' : 'Queues a test message on qliksense/butler/mqtt/test';
  const result = byId('test-result');
  button.addEventListener('click', async () => {
    button.disabled = true;
    result.textContent = 'sending…';
    result.dataset.state = '';
    try {
      /** @type {Record<string, string>} */
      const headers = { 'X-Butler-Mqtt-Page': '1' };
      if (token.value) headers['Authorization'] = `Bearer ${token.value}`;
      const res = await fetch('/status/test-event', { method: 'POST', headers });
      const body = await res.json().catch(() => ({}));
      result.textContent = body.message ?? `HTTP ${res.status}`;
      result.dataset.state = res.ok ? 'ok' : 'bad';
    } catch (err) {
      result.textContent = `could not send: ${String(err)}`;
      result.dataset.state = 'bad';
    } finally {
      button.disabled = false;
    }
  });
}

/** @param {string} state */
function stateLabel(state) {
  return state.charAt(0).toUpperCase() + state.slice(1);
}

/** @param {ActivityEntry} e */
function row(e) {
  const tr = el('tr');
  tr.dataset.id = String(e.id);
  tr.dataset.state = e.state;
  tr.dataset.type = e.type;
  tr.append(el('td', 'c-time', fmtTime(e.at)));
  tr.append(el('td', 'c-source', e.source));
  const what = el('td', 'c-event');
  what.append(el('span', 'summary', e.type === 'message' ? 'message without an input event' : e.summary));
  if (e.reason) what.append(el('span', 'reason', e.reason));
  tr.append(what);
  const published = el('td', 'c-published');
  if (e.messages.length === 0) published.append(el('span', 'muted', e.state === 'received' ? 'handling…' : '—'));
  for (const m of e.messages) {
    const line = el('div', 'msg');
    line.dataset.delivered = m.deliveredAt !== null ? 'yes' : 'no';
    line.append(el('span', 'dot'));
    line.append(el('code', 'topic', m.topic));
    line.title = m.deliveredAt !== null ? `acknowledged by the broker at ${fmtTime(m.deliveredAt)}` : 'waiting for the broker';
    published.append(line);
  }
  tr.append(published);
  const st = el('td', 'c-state');
  st.append(el('span', 'pill', stateLabel(e.state)));
  tr.append(st);
  return tr;
}

function renderActivity() {
  const body = byId('activity-body');
  const sorted = [...entries.values()].sort((a, b) => b.id - a.id).slice(0, MAX_ROWS);
  body.replaceChildren(...sorted.map(row));
  byId('activity-empty').hidden = sorted.length > 0;
}

/** @param {ActivityEntry[]} list */
function upsert(list) {
  for (const e of list) entries.set(e.id, e);
  if (entries.size > MAX_ROWS) {
    const keep = [...entries.keys()].sort((a, b) => b - a).slice(0, MAX_ROWS);
    const keepSet = new Set(keep);
    for (const id of [...entries.keys()]) if (!keepSet.has(id)) entries.delete(id);
  }
  renderActivity();
}

/** @param {string} state */
function setLive(state) {
  const live = byId('live');
  live.dataset.state = state;
  live.textContent = state === 'open' ? 'live' : state;
}

function connect() {
  const source = new EventSource('/status/events');
  source.addEventListener('open', () => setLive('open'));
  source.addEventListener('error', () => setLive('reconnecting'));
  source.addEventListener('snapshot', (ev) => {
    const data = JSON.parse(/** @type {MessageEvent} */ (ev).data);
    entries.clear();
    for (const e of data.activity) entries.set(e.id, e);
    renderStatus(data.status);
    renderActivity();
  });
  source.addEventListener('status', (ev) => renderStatus(JSON.parse(/** @type {MessageEvent} */ (ev).data)));
  source.addEventListener('entries', (ev) => upsert(JSON.parse(/** @type {MessageEvent} */ (ev).data)));
  source.addEventListener('remove', (ev) => {
    for (const id of JSON.parse(/** @type {MessageEvent} */ (ev).data).ids) entries.delete(id);
    renderActivity();
  });
}

connect();
