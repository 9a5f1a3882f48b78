// Properties of the config loader over generated input: YAML-ish text, random data trees and mutated
// copies of a real Butler production config. The loader either returns a config or throws ConfigError
// whose every issue names a path and says what is wrong; nothing else escapes. A key set to a value its
// schema refuses is reported at exactly that key's path.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { ConfigError, parseConfigText } from '../../src/config/load.ts';
import { ButlerSchema } from '../../src/config/schema.ts';
import { REPO_ROOT, tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-config-prop-');
after(() => tmp.cleanup());

// The production fixture next to the certificate files it names, so it loads as it is.
const dir = path.join(tmp.dir, 'fixture');
mkdirSync(path.join(dir, 'certs'), { recursive: true });
for (const f of ['client.pem', 'client_key.pem', 'root.pem']) writeFileSync(path.join(dir, 'certs', f), 'test\n');
const FILE = path.join(dir, 'butler.yaml');
const BASE = parse(readFileSync(path.join(REPO_ROOT, 'test/fixtures/butler-production.yaml'), 'utf8')) as { Butler: Record<string, unknown> };

type Outcome = { ok: true } | { ok: false; issues: { path: string; message: string; line?: number }[] };

/** Runs the loader; any exception other than ConfigError fails the property (with the input). */
function load(text: string): Outcome {
  try {
    parseConfigText(text, FILE);
    return { ok: true };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw new Error(`parseConfigText threw ${(err as Error)?.constructor?.name}: ${(err as Error)?.message} for input ${JSON.stringify(text).slice(0, 400)}`);
    return { ok: false, issues: err.issues };
  }
}

function assertWellFormed(o: Outcome): void {
  if (o.ok) return;
  assert.ok(o.issues.length > 0, 'a ConfigError lists at least one issue');
  for (const i of o.issues) {
    assert.equal(typeof i.path, 'string');
    assert.ok(i.path.length > 0, `issue without a path: ${JSON.stringify(i)}`);
    assert.equal(typeof i.message, 'string');
    assert.ok(i.message.trim().length > 0, `issue without a message: ${JSON.stringify(i)}`);
    if (i.line !== undefined) assert.ok(Number.isInteger(i.line) && i.line > 0, `bad line ${i.line}`);
  }
}

// Pieces of YAML syntax, Butler key names and odd scalars, so generated text is often nearly valid.
const piece = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('Butler', 'Butler:', 'mqttConfig', 'udpServerConfig', 'enable', 'brokerPort', 'brokerHost', 'messageQueue', 'maxSize', 'allowedSources', 'delivery', 'logLevel') },
  { weight: 4, arbitrary: fc.constantFrom(':', ': ', ' ', '  ', '\n', '\n  ', '\n    ', '- ', '#', '"', "'", '[', ']', '{', '}', ',', '?', '|', '>', '\t', '\r\n') },
  { weight: 2, arbitrary: fc.constantFrom('&a ', '*a', '&b ', '*b', '!!str ', '!!int ', '!!float ', '!!binary ', '!!set ', '!!map ', '!!seq ', '!!timestamp ', '!custom ', '<<: ', '%YAML 1.1\n', '---\n', '...\n', '%TAG ! tag:x,2000:\n') },
  { weight: 2, arbitrary: fc.constantFrom('true', 'false', 'yes', 'null', '~', '1e400', '-1', '0x1F', '0o17', '.nan', '-.inf', '65536', '2001-12-14', '<FQDN>', '""', "''", '[]', '{}') },
  { weight: 2, arbitrary: fc.string({ maxLength: 6 }) },
);
const yamlish = fc.tuple(fc.boolean(), fc.array(piece, { maxLength: 60 })).map(([prefix, parts]) => (prefix ? 'Butler:\n  ' : '') + parts.join(''));

/** Every key path of the schema's objects (not inside lists), with the leaf schema. */
function schemaPaths(schema: unknown, prefix: string[] = []): { path: string[]; schema: Record<string, unknown> }[] {
  const s = schema as { type?: string; properties?: Record<string, unknown> };
  const out: { path: string[]; schema: Record<string, unknown> }[] = [];
  if (s.type === 'object' && s.properties) {
    for (const [k, child] of Object.entries(s.properties)) {
      out.push({ path: [...prefix, k], schema: child as Record<string, unknown> });
      out.push(...schemaPaths(child, [...prefix, k]));
    }
  }
  return out;
}
const PATHS = schemaPaths(ButlerSchema);
const INTEGER_LEAVES = PATHS.filter((p) => p.schema['type'] === 'integer');
const BOOLEAN_LEAVES = PATHS.filter((p) => p.schema['type'] === 'boolean');

function setAt(root: Record<string, unknown>, keys: string[], value: unknown): void {
  let cur = root;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[keys[keys.length - 1] as string] = value;
}

function deleteAt(root: Record<string, unknown>, keys: string[]): void {
  let cur: unknown = root;
  for (const k of keys.slice(0, -1)) {
    if (cur === null || typeof cur !== 'object') return;
    cur = (cur as Record<string, unknown>)[k];
  }
  if (cur !== null && typeof cur === 'object') delete (cur as Record<string, unknown>)[keys[keys.length - 1] as string];
}

const leafValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom('', '<FQDN or IP of MQTT server>', 'qliksense/+/x', '#', '\u0001', 'every 30 seconds', 'every banana', '0 */5 * * *', 'a'.repeat(300)),
  fc.integer(),
  fc.double(),
);
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), at: fc.constantFrom(...PATHS.map((p) => p.path)), value: leafValue }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.constantFrom(...PATHS.map((p) => p.path)) }),
  fc.record({ kind: fc.constant('unknown' as const), at: fc.constantFrom(...PATHS.map((p) => p.path)), value: leafValue }),
);

/** A small valid config: cheap to load, for properties about single keys. */
const SMALL = { Butler: { mqttConfig: { enable: true, brokerHost: 'broker.example' }, udpServerConfig: { enable: true } } };

function mutated(mutations: { kind: 'set' | 'delete' | 'unknown'; at: string[]; value?: unknown }[], base: { Butler: Record<string, unknown> } = BASE): string {
  const doc = structuredClone(base);
  for (const m of mutations) {
    if (m.kind === 'set') setAt(doc.Butler, m.at, m.value);
    else if (m.kind === 'delete') deleteAt(doc.Butler, m.at);
    else setAt(doc.Butler, [...m.at.slice(0, -1), 'zzUnknownKey'], m.value);
  }
  return stringify(doc);
}

describe('parseConfigText over generated input', () => {
  it('the unmutated bases load (the mutations below start from valid configs)', () => {
    assert.deepEqual(load(stringify(BASE)), { ok: true });
    assert.deepEqual(load(stringify(SMALL)), { ok: true });
  });

  it('YAML-ish text: a config or a ConfigError whose every issue has a path and a message', () => {
    fc.assert(
      fc.property(yamlish, (text) => assertWellFormed(load(text))),
      { numRuns: 3000 },
    );
  });

  it('arbitrary data under Butler: a config or a well-formed ConfigError', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => assertWellFormed(load(stringify({ Butler: value })))),
      { numRuns: 500 },
    );
  });

  it('mutated copies of a production config: a config or a well-formed ConfigError', () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => assertWellFormed(load(mutated(mutations)))),
      { numRuns: 250 },
    );
  });

  it('an integer key set to a value outside its range, or not an integer, is reported at exactly that key', () => {
    const badInteger = (min: number, max: number) =>
      fc.oneof(fc.constant(min - 1), fc.constant(max + 1), fc.constant(1.5), fc.constantFrom('abc', '', 'twelve'), fc.constant(true), fc.constant([1]), fc.constant({ n: 1 }));
    const pick = fc.constantFrom(...INTEGER_LEAVES).chain((leaf) =>
      badInteger(leaf.schema['minimum'] as number, leaf.schema['maximum'] as number).map((value) => ({ leaf, value })),
    );
    fc.assert(
      fc.property(pick, ({ leaf, value }) => {
        const o = load(mutated([{ kind: 'set', at: leaf.path, value }], SMALL));
        assert.equal(o.ok, false, `${leaf.path.join('.')} = ${JSON.stringify(value)} was accepted`);
        if (!o.ok) {
          const where = `Butler.${leaf.path.join('.')}`;
          assert.ok(o.issues.some((i) => i.path === where), `no issue at ${where}: ${JSON.stringify(o.issues)}`);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('a true/false key set to anything else is reported at exactly that key', () => {
    const pick = fc.record({ leaf: fc.constantFrom(...BOOLEAN_LEAVES), value: fc.constantFrom('yes', 'on', 'true ', 1, 0, [true], { v: true }) });
    fc.assert(
      fc.property(pick, ({ leaf, value }) => {
        const o = load(mutated([{ kind: 'set', at: leaf.path, value }], SMALL));
        assert.equal(o.ok, false, `${leaf.path.join('.')} = ${JSON.stringify(value)} was accepted`);
        if (!o.ok) assert.ok(o.issues.some((i) => i.path === `Butler.${leaf.path.join('.')}`), JSON.stringify(o.issues));
      }),
      { numRuns: 300 },
    );
  });

  it('an alias bomb is a ConfigError, not a crash', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', 'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]', 'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]', 'Butler: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]'].join('\n');
    const o = load(bomb);
    assert.equal(o.ok, false);
    if (!o.ok) {
      assert.equal(o.issues.length, 1);
      assert.equal(o.issues[0]?.path, '(yaml)');
      assert.match(o.issues[0]?.message ?? '', /^YAML cannot be read: /);
    }
  });
});
