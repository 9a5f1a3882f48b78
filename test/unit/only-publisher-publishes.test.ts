// Only the Publisher publishes and only the broker connection holds the MQTT client: no other source
// file calls a publish method or imports the mqtt package for anything but types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../support/bridge.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : /\.(ts|js|mjs)$/.test(e.name) ? [p] : [];
  });
}

const files = sources(path.join(REPO_ROOT, 'src')).map((f) => ({ file: path.relative(REPO_ROOT, f).split(path.sep).join('/'), text: readFileSync(f, 'utf8') }));

test('no file but src/mqtt/publisher.ts and src/mqtt/connection.ts calls publish, publishAsync or publishRaw', () => {
  const allowed = new Set(['src/mqtt/publisher.ts', 'src/mqtt/connection.ts']);
  const offenders = files.filter((f) => !allowed.has(f.file) && /\.(publish|publishAsync|publishRaw)\s*\(/.test(f.text)).map((f) => f.file);
  assert.deepEqual(offenders, []);
  // The rule is checked against something real: the Publisher does publish.
  assert.match(files.find((f) => f.file === 'src/mqtt/publisher.ts')!.text, /\.publishRaw\(/);
});

test('only src/mqtt/connection.ts imports the mqtt package at run time (others import types only), and the watch command', () => {
  const runtimeImport = /^import\s+(?!type\b)[^;]*from\s+['"]mqtt['"]/m;
  // `butler-mqtt watch` is a subscriber of its own, in its own process, not part of the bridge; the
  // publish check above still covers it (it publishes nothing).
  const allowed = new Set(['src/mqtt/connection.ts', 'src/cli/watch.ts']);
  const offenders = files.filter((f) => !allowed.has(f.file) && runtimeImport.test(f.text)).map((f) => f.file);
  assert.deepEqual(offenders, []);
  assert.match(files.find((f) => f.file === 'src/mqtt/connection.ts')!.text, runtimeImport);
});

test('no file but src/mqtt/connection.ts reaches for a raw client (connection.client, .client.subscribe/on/publish)', () => {
  const offenders = files.filter((f) => f.file !== 'src/mqtt/connection.ts' && /connection\.client\b|\.client\.(subscribe|on|publish|unsubscribe)\(/.test(f.text)).map((f) => f.file);
  assert.deepEqual(offenders, []);
});
