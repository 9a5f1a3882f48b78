// Socket-level fuzzing of a running bridge (a real child process): 100,000 random and mutated
// datagrams on the UDP input and 5,000 random bodies on the REST publish endpoint. The process stays
// up, every input is counted (received = accepted + rejected; REST requests by status), what was
// accepted is delivered, and its memory comes back to its baseline; a topic the broker would answer
// with a disconnect ($-topics, more than 100 levels) or that is not a string is never accepted. Inputs
// come from a seeded generator: the seed is printed, and FUZZ_SEED=<seed> replays a run. Also: config
// files with near-miss keys (a fast-check property: every near miss of a security key is an error).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startBroker } from '../support/broker.ts';
import { baseButler, deepMerge, spawnBridge, tempDir, writeConfig } from '../support/bridge.ts';
import { freeUdpPort } from '../support/udp.ts';
import { freePort, sleep, waitFor } from '../support/wait.ts';
import { WebSocket } from 'undici';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { ConfigError, parseConfigText } from '../../src/config/load.ts';
import { ButlerSchema } from '../../src/config/schema.ts';
import { BUTLER_KEYS_NOT_READ } from '../../src/config/unknown-keys.ts';

const tmp = tempDir('bm-fuzz-');
after(() => tmp.cleanup());

const DATAGRAMS = 100_000;
const BODIES = 5_000;
const MAX_MESSAGE_SIZE = 4096;
const BODY_LIMIT = 65_536;
const PUBLISH_PATH = '/v4/mqttpublishmessage';
const WARMUP_DATAGRAMS = 10_000;
const WARMUP_BODIES = 1_000;

/** mulberry32: small, fast and good enough to drive a fuzzer reproducibly. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  const pick = <T>(list: readonly T[]): T => list[int(0, list.length - 1)] as T;
  const chance = (p: number) => next() < p;
  const bytes = (n: number) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = int(0, 255);
    return b;
  };
  const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
  const guid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-${pick(['8', '9', 'a', 'b'])}${hex(3)}-${hex(12)}`;
  /** Printable text with control characters, multi-byte and lone surrogates mixed in; `;` only when asked. */
  const text = (max: number, semicolons = false) => {
    const n = int(0, max);
    let s = '';
    for (let i = 0; i < n; i++) {
      const c = chance(0.8)
        ? String.fromCharCode(int(0x20, 0x7e))
        : pick([';', '\u0000', '\r\n', '\t', '\u007f', 'é', '€', '😀', '\ud800', '\\\\', '"', '/', String.fromCharCode(int(0x80, 0xffff))]);
      s += c === ';' && !semicolons ? ',' : c;
    }
    return s;
  };
  return { next, int, pick, chance, bytes, guid, text };
}
type Gen = ReturnType<typeof generator>;

const TYPES = [
  '/scheduler-reload-failed/', '/scheduler-task-failed/', '/scheduler-reloadtask-failed/', '/scheduler-reload-aborted/',
  '/scheduler-task-aborted/', '/scheduler-reloadtask-success/', '/scheduler-task-success/', '/scheduler-task-success//',
  '/scheduler-distribute/', '/engine-reload-failed/', '/SCHEDULER-RELOAD-FAILED/', '/qseow-proxy-session/', 'nonsense',
];

/** A datagram shaped like the Sense log appender's, with random field contents; executionIds repeat now and then. */
function plausible(g: Gen, recentIds: string[]): Buffer {
  const type = g.pick(TYPES);
  const executionId = g.chance(0.1) && recentIds.length > 0 ? g.pick(recentIds) : g.guid();
  if (recentIds.length < 50) recentIds.push(executionId);
  else recentIds[g.int(0, 49)] = executionId;
  const fields = [type, g.text(20), g.text(40), g.text(40), g.text(20), g.chance(0.9) ? g.guid() : g.text(10), g.chance(0.9) ? g.guid() : '', g.text(25), g.pick(['ERROR', 'WARN', 'INFO', '']), executionId, g.text(80, true)];
  const count = g.chance(0.85) ? 11 : g.int(1, 14);
  return Buffer.from(fields.slice(0, count).concat(count > 11 ? ['extra', 'fields', 'x'].slice(0, count - 11) : []).join(';'), 'utf8');
}

/** Byte-level damage: flips, cuts, insertions, invalid UTF-8, separators moved. */
function mutate(g: Gen, input: Buffer): Buffer {
  let b = Buffer.from(input);
  for (let k = g.int(1, 4); k > 0; k--) {
    const at = g.int(0, Math.max(0, b.length - 1));
    switch (g.int(0, 7)) {
      case 0:
        if (b.length > 0) b[at] = (b[at] as number) ^ (1 << g.int(0, 7));
        break;
      case 1:
        b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + g.int(1, 20)))]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, at), g.bytes(g.int(1, 8)), b.subarray(at)]);
        break;
      case 3:
        b = b.subarray(0, at);
        break;
      case 4:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(g.pick([';', ';;', '\u0000', '\u00ff'])), b.subarray(at)]);
        break;
      case 5:
        b = Buffer.concat([b.subarray(0, at), Buffer.from(g.pick([[0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xf0, 0x28, 0x8c, 0x28]])), b.subarray(at)]);
        break;
      case 6:
        b = Buffer.concat([b, b.subarray(0, g.int(0, b.length))]);
        break;
      default:
        if (b.length > 0) b[at] = 0x3b; // ';'
    }
  }
  return b;
}

function datagram(g: Gen, recentIds: string[]): Buffer {
  const r = g.next();
  if (r < 0.15) return g.bytes(g.int(0, 300));
  if (r < 0.16) return g.bytes(g.int(MAX_MESSAGE_SIZE + 1, MAX_MESSAGE_SIZE + 2000));
  if (r < 0.165) return Buffer.alloc(0);
  if (r < 0.75) return mutate(g, plausible(g, recentIds));
  return plausible(g, recentIds);
}

interface RestCase {
  method: 'PUT' | 'POST';
  headers: Record<string, string>;
  body: string | Buffer;
  query: string;
  /** A well-formed call whose topic no broker would take: must never be answered 201. */
  badTopic: boolean;
}

function restCase(g: Gen): RestCase {
  let badTopic = false;
  const topic = () => {
    const r = g.int(0, 99);
    // Topics the embedded broker answers with a disconnect: $-topics and more than 100 levels.
    if (r < 6) {
      badTopic = true;
      return g.pick(['$SYS/', '$share/g/', '$', '$fuzz/']) + g.text(20);
    }
    if (r < 10) {
      const levels = g.int(95, 130);
      badTopic ||= levels > 100;
      return `fuzz${'/l'.repeat(levels - 1)}`;
    }
    const raw = g.pick(['fuzz/', 'fuzz/', 'fuzz/', 'other/', '', '$SYS/', 'fuzz/+/', 'fuzz/#']) + g.text(30);
    if (raw.startsWith('$')) badTopic = true;
    return g.chance(0.02) ? 'fuzz/' + 'x'.repeat(g.int(65_530, 65_540)) : raw;
  };
  const value = (): unknown => g.pick<() => unknown>([() => g.text(60), () => g.int(-1e6, 1e6), () => null, () => true, () => ({ nested: g.text(10) }), () => [g.text(5)], () => g.next()])();
  const kind = g.int(0, 99);
  let body: string | Buffer;
  if (kind < 55) body = JSON.stringify({ topic: topic(), message: g.chance(0.8) ? g.text(200) : value(), ...(g.chance(0.2) ? { qos: g.int(0, 3), extra: g.text(10) } : {}) });
  else if (kind < 60) {
    // A topic that is not a string: a number must not become topic "42".
    badTopic = true;
    body = JSON.stringify({ topic: g.pick<() => unknown>([() => g.int(-1e6, 1e6), () => g.next(), () => true, () => [`fuzz/${g.text(5)}`], () => ({ t: 'fuzz/x' })])(), message: g.text(20) });
  } else if (kind < 65) body = JSON.stringify(g.chance(0.5) ? { topic: topic() } : { message: g.text(20) });
  else if (kind < 72) body = JSON.stringify({ topic: value(), message: value() });
  else if (kind < 80) body = mutate(g, Buffer.from(JSON.stringify({ topic: topic(), message: g.text(50) }), 'utf8'));
  else if (kind < 85) body = g.bytes(g.int(0, 200));
  else if (kind < 90) body = JSON.stringify(g.pick<unknown>([[], [1, 2], 'a string', 42, null, true, {}]));
  else if (kind < 92) body = JSON.stringify({ topic: 'fuzz/large', message: 'x'.repeat(BODY_LIMIT + g.int(1, 5000)) });
  else body = '';
  // Only the first kind, and the non-string kind, are well-formed calls whose refusal depends on the topic alone.
  if (!(kind < 60)) badTopic = false;
  const method = g.chance(0.75) ? 'PUT' : 'POST';
  const headers: Record<string, string> = { 'content-type': g.chance(0.93) ? 'application/json' : g.pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8']) };
  if (method === 'POST' && g.chance(0.8)) headers['x-http-method-override'] = g.pick(['PUT', 'put', ' PUT ', 'PATCH']);
  return { method, headers, body, query: g.chance(0.03) ? '?wait=true' : g.chance(0.02) ? '?wait=maybe' : '', badTopic };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || line.startsWith('#')) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

const sum = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);

/**
 * A full, memory-reducing garbage collection in the bridge, asked for through its inspector (the test
 * starts it with --inspect on a random loopback port): without it RSS shows V8's heap high-water mark,
 * which V8 keeps long after a burst, rather than what is still held.
 */
async function collectGarbage(lines: string[]): Promise<void> {
  const url = lines.map((l) => /Debugger listening on (ws:\/\/\S+)/.exec(l)?.[1]).find((u) => u !== undefined);
  assert.ok(url, 'the bridge announced its inspector');
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('inspector connection failed')), { once: true });
    });
    await new Promise<void>((resolve) => {
      ws.addEventListener('message', (e) => {
        if ((JSON.parse(String(e.data)) as { id?: number }).id === 1) resolve();
      });
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    });
  } finally {
    ws.close();
  }
}

function rssMB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

test('100,000 random and mutated datagrams and 5,000 random REST bodies: the bridge stays up, counts every input, delivers what it accepted, returns to its memory baseline', async (t) => {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
  t.diagnostic(`seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const g = generator(seed);
  const broker = await startBroker();
  const udpPort = await freeUdpPort();
  const httpPort = await freePort();
  const file = writeConfig(
    tmp.dir,
    deepMerge(baseButler(broker.port), {
      mqttConfig: { delivery: { outboxFile: path.join(tmp.dir, 'fuzz', 'outbox.sqlite') } },
      udpServerConfig: { enable: true, serverHost: '127.0.0.1', portTaskFailure: udpPort, maxMessageSize: MAX_MESSAGE_SIZE },
      restServerConfig: { enable: true, serverHost: '127.0.0.1', serverPort: httpPort, rateLimitPerMinute: 1_000_000, bodyLimitBytes: BODY_LIMIT, publishAllowedTopicPrefixes: ['fuzz/'] },
      restServerEndpointsEnable: { mqttPublishMessage: true },
    }),
    'fuzz.yaml',
  );
  const bridge = await spawnBridge(file, ['run'], { NODE_OPTIONS: '--inspect=127.0.0.1:0' });
  const pid = bridge.child.pid as number;
  const base = `http://127.0.0.1:${httpPort}`;
  const scrape = async () => parseMetrics(await (await fetch(`${base}/metrics`)).text());
  const socket = dgram.createSocket('udp4');
  const recentIds: string[] = [];
  let sent = 0;
  const alive = () => assert.equal(bridge.child.exitCode, null, `the bridge exited:\n${bridge.lines.slice(-20).join('\n')}`);

  /** Sends n datagrams, never more than `window` ahead of what the bridge has read (so the kernel drops none). */
  const sendDatagrams = async (n: number, window = 800) => {
    const target = sent + n;
    while (sent < target) {
      const received = sum(await scrape(), 'butler_mqtt_events_received_total', { source: 'udp_task' });
      const room = Math.min(window - (sent - received), target - sent);
      if (room <= 0) {
        await sleep(2);
        continue;
      }
      await Promise.all(
        Array.from({ length: room }, () => new Promise<void>((resolve) => socket.send(datagram(g, recentIds), udpPort, '127.0.0.1', () => resolve()))),
      );
      sent += room;
    }
  };
  const settled = async (what: string) => {
    await waitFor(
      async () => {
        const s = await scrape();
        const received = sum(s, 'butler_mqtt_events_received_total', { source: 'udp_task' });
        const accounted = sum(s, 'butler_mqtt_events_accepted_total', { source: 'udp_task' }) + sum(s, 'butler_mqtt_events_rejected_total', { source: 'udp_task' });
        return received === sent && accounted === received && sum(s, 'butler_mqtt_inbox_events') === 0 && sum(s, 'butler_mqtt_outbox_messages') === 0;
      },
      30_000,
      `${what}: every datagram counted, inbox and outbox empty`,
      50,
    );
  };

  const status = new Map<number, number>();
  const badTopicAnswers = new Map<number, number>();
  const sendBodies = async (n: number) => {
    let i = 0;
    const worker = async () => {
      while (i < n) {
        i++;
        const c = restCase(g);
        const res = await fetch(`${base}${PUBLISH_PATH}${c.query}`, { method: c.method, headers: c.headers, body: typeof c.body === 'string' ? c.body : new Uint8Array(c.body) });
        await res.arrayBuffer();
        status.set(res.status, (status.get(res.status) ?? 0) + 1);
        if (c.badTopic) badTopicAnswers.set(res.status, (badTopicAnswers.get(res.status) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
  };

  try {
    // Memory is read after a full garbage collection (see collectGarbage): RSS of the process and the
    // V8 heap in use (from the bridge's own process metrics).
    const memory = async () => {
      await collectGarbage(bridge.lines);
      await sleep(500);
      return { rss: rssMB(pid), heap: sum(await scrape(), 'butler_mqtt_nodejs_heap_size_used_bytes') / 1048576 };
    };

    // Warm-up, then the baseline: code paths compiled, caches and pools at their working size.
    await sendDatagrams(WARMUP_DATAGRAMS);
    await sendBodies(WARMUP_BODIES);
    await settled('warm-up');
    const baseline = await memory();
    const acceptedAtBaseline = sum(await scrape(), 'butler_mqtt_events_accepted_total', { source: 'udp_task' });

    const started = Date.now();
    await sendDatagrams(DATAGRAMS / 2);
    await settled('first half');
    alive();
    const half = await memory();
    await sendDatagrams(DATAGRAMS / 2);
    await settled('second half');
    alive();
    const udpSeconds = (Date.now() - started) / 1000;

    const restStarted = Date.now();
    await sendBodies(BODIES);
    await settled('after the REST bodies');
    alive();
    const restSeconds = (Date.now() - restStarted) / 1000;
    const end = await memory();

    const s = await scrape();
    const received = sum(s, 'butler_mqtt_events_received_total', { source: 'udp_task' });
    const accepted = sum(s, 'butler_mqtt_events_accepted_total', { source: 'udp_task' });
    const rejected = sum(s, 'butler_mqtt_events_rejected_total', { source: 'udp_task' });
    assert.equal(received, DATAGRAMS + WARMUP_DATAGRAMS, 'every datagram sent was received');
    assert.equal(accepted + rejected, received, 'every datagram received was accepted or rejected');
    assert.ok(accepted > 0 && rejected > 0, `both outcomes expected: ${accepted} accepted, ${rejected} rejected`);

    // REST: the bridge's count of requests per status equals what the client saw (warm-up included).
    const serverByStatus: Record<string, number> = {};
    for (const x of s.filter((x) => x.name === 'butler_mqtt_rest_requests_total' && x.labels['route'] !== '/metrics')) {
      const code = x.labels['status'] ?? '?';
      serverByStatus[code] = (serverByStatus[code] ?? 0) + x.value;
    }
    const clientByStatus = Object.fromEntries([...status].map(([code, n]) => [String(code), n]));
    assert.equal(Object.values(clientByStatus).reduce((a, b) => a + b, 0), BODIES + WARMUP_BODIES);
    assert.deepEqual(serverByStatus, clientByStatus, 'requests counted by status');
    assert.deepEqual([...status.keys()].filter((c) => ![201, 400, 403, 404, 413, 415].includes(c)), [], `unexpected statuses: ${JSON.stringify(Object.fromEntries(status))}`);
    const restReceived = sum(s, 'butler_mqtt_events_received_total', { source: 'rest' });
    const restAccounted = sum(s, 'butler_mqtt_events_accepted_total', { source: 'rest' }) + sum(s, 'butler_mqtt_events_rejected_total', { source: 'rest' });
    assert.equal(restAccounted, restReceived, 'every publish request that reached the endpoint was accepted or rejected');
    assert.equal(sum(s, 'butler_mqtt_events_accepted_total', { source: 'rest' }), clientByStatus['201'] ?? 0, 'accepted publishes = 201 answers');
    // $-topics, topics over 100 levels and non-string topics: never stored (refused, or not reaching the route).
    assert.ok((badTopicAnswers.get(400) ?? 0) > 0, `bad topics were sent: ${JSON.stringify(Object.fromEntries(badTopicAnswers))}`);
    assert.equal(badTopicAnswers.get(201) ?? 0, 0, `a bad topic was accepted: ${JSON.stringify(Object.fromEntries(badTopicAnswers))}`);
    assert.ok(sum(s, 'butler_mqtt_events_rejected_total', { source: 'rest', reason: 'reserved_topic' }) > 0, '$-topics counted as reserved_topic');

    // Memory, both readings taken after a full garbage collection. What may legitimately stay: each
    // accepted event's executionId is remembered for deduplication.ttlMinutes (about 200 bytes of heap
    // per key; the same run without deduplication grows the heap by 0.5 MB). Allowed: 0.3 KB of heap per
    // accepted event plus 4 MB (code compiled late, the key map's doubling); for RSS 0.5 KB per accepted
    // event plus 24 MB (memory the allocators keep after freeing). A leak of 0.1 KB per datagram would
    // break the heap bound.
    const acceptedSinceBaseline = accepted - acceptedAtBaseline;
    const heapAllowance = 4 + (acceptedSinceBaseline * 0.3) / 1024;
    const rssAllowance = 24 + (acceptedSinceBaseline * 0.5) / 1024;
    const mb = (m: { rss: number; heap: number }) => `RSS ${m.rss.toFixed(1)} MB, heap ${m.heap.toFixed(1)} MB`;
    t.diagnostic(
      `${received} datagrams (${accepted} accepted, ${rejected} rejected) in ${udpSeconds.toFixed(1)} s; ${BODIES} REST bodies in ${restSeconds.toFixed(1)} s (with the warm-up, by status: ${JSON.stringify(clientByStatus)})`,
    );
    t.diagnostic(`memory after GC: baseline ${mb(baseline)}; after 50,000 datagrams ${mb(half)}; at the end ${mb(end)} (allowed: RSS +${rssAllowance.toFixed(1)} MB, heap +${heapAllowance.toFixed(1)} MB)`);
    assert.ok(end.heap <= baseline.heap + heapAllowance, `heap in use ${end.heap.toFixed(1)} MB at the end, baseline ${baseline.heap.toFixed(1)} MB`);
    assert.ok(end.rss <= baseline.rss + rssAllowance, `RSS ${end.rss.toFixed(1)} MB at the end, baseline ${baseline.rss.toFixed(1)} MB`);
  } finally {
    socket.close();
    await bridge.kill('SIGTERM');
    await broker.stop();
  }
});

// Keys whose misspelling silently opens something: the start filter, REST access, UDP source checks, TLS.
const SECURITY_KEYS = [
  'startTaskFilter.enable', 'startTaskFilter.allowTask.taskId', 'startTaskFilter.allowTask.customProperty', 'restServerConfig.apiToken',
  'restServerConfig.publishAllowedTopicPrefixes', 'restServerConfig.allowedHosts', 'restServerConfig.serverHost', 'restServerConfig.tls.enable',
  'udpServerConfig.enableSourceValidation', 'udpServerConfig.allowedSources', 'udpServerConfig.serverHost', 'mqttConfig.tls.enable',
  'mqttConfig.tls.rejectUnauthorized', 'mqttConfig.password', 'mqttConfig.username', 'mqttConfig.embeddedBroker.host', 'configQRS.rejectUnauthorized',
  'restServerEndpointsEnable.mqttPublishMessage',
] as const;

/** The keys a section reads (from the schema) plus the Butler keys accepted there: a mutation landing on one is not a typo. */
function keysAt(sectionPath: string[]): string[] {
  let schema = ButlerSchema as unknown as { properties?: Record<string, unknown> };
  for (const seg of sectionPath) schema = (schema.properties?.[seg] ?? {}) as typeof schema;
  return [...Object.keys(schema.properties ?? {}), ...(BUTLER_KEYS_NOT_READ[sectionPath.join('.')] ?? [])];
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_';

/** One typing mistake at a position: delete, insert, substitute, transpose, or a case flip (free). */
const edit = fc.record({ kind: fc.constantFrom('delete', 'insert', 'substitute', 'transpose', 'case', 'plural'), at: fc.nat(), ch: fc.constantFrom(...LETTERS) });
type Edit = { kind: string; at: number; ch: string };

function applyEdit(key: string, e: Edit): string {
  const i = e.at % Math.max(1, key.length);
  switch (e.kind) {
    case 'delete': return key.length > 1 ? key.slice(0, i) + key.slice(i + 1) : key;
    case 'insert': return key.slice(0, i) + e.ch + key.slice(i);
    case 'substitute': return key.slice(0, i) + e.ch + key.slice(i + 1);
    case 'transpose': return i + 1 < key.length ? key.slice(0, i) + (key[i + 1] as string) + (key[i] as string) + key.slice(i + 2) : key;
    case 'case': {
      const c = key[i] as string;
      return key.slice(0, i) + (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) + key.slice(i + 1);
    }
    default: return key.endsWith('s') ? key.slice(0, -1) : `${key}s`;
  }
}

test('config property: every near miss of a security key (case, plural, up to two typing mistakes) is an error at its path with "did you mean"', () => {
  fc.assert(
    fc.property(fc.constantFrom(...SECURITY_KEYS), fc.array(edit, { minLength: 1, maxLength: 4 }), (dotted, edits) => {
      const segments = dotted.split('.');
      const key = segments.pop() as string;
      // Case flips and the plural are free; other edits count, and the key must stay within the limit.
      let typo = key;
      let counted = 0;
      const limit = key.length < 5 ? 1 : 2;
      for (const e of edits) {
        const free = e.kind === 'case' || (e.kind === 'plural' && counted === 0);
        if (!free && counted >= limit) continue;
        const next = applyEdit(typo, e);
        if (next === typo) continue;
        typo = next;
        if (!free) counted++;
        if (e.kind === 'plural') counted = limit; // singular/plural is its own rule: no edits on top of it
      }
      fc.pre(!keysAt(segments).includes(typo));
      const tree: Record<string, unknown> = { [typo]: 'x' };
      let node: Record<string, unknown> = tree;
      for (const seg of [...segments].reverse()) node = { [seg]: node };
      const text = stringify({ Butler: node });
      let issues: { path: string; message: string }[] = [];
      try {
        parseConfigText(text, path.join(tmp.dir, 'near-miss.yaml'));
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        issues = err.issues;
      }
      const at = `Butler.${[...segments, typo].join('.')}`;
      const issue = issues.find((i) => i.path === at);
      assert.ok(issue, `${JSON.stringify(typo)} for ${dotted} was not refused:\n${text}\n${JSON.stringify(issues)}`);
      assert.match(issue.message, /^unknown key ".*": did you mean "[^"]+"\?/);
    }),
    { numRuns: 2000 },
  );
});
