// The rotating log file: appends, rotates by size keeping `count` older files, never loses a line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { RotatingFile } from '../../src/observability/log-file.ts';
import { tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-logfile-');
after(() => tmp.cleanup());

const line = (i: number) => `{"n":${String(i).padStart(3, '0')}}\n`; // 10 bytes

test('rotates before a write would pass maxBytes; keeps count older files; the oldest go', () => {
  const dir = path.join(tmp.dir, 'a', 'nested');
  const f = new RotatingFile({ dir, name: 'butler-mqtt.log', maxBytes: 30, count: 2 });
  for (let i = 0; i < 10; i++) f.write(line(i));
  f.close();
  assert.deepEqual(readdirSync(dir).sort(), ['butler-mqtt.log', 'butler-mqtt.log.1', 'butler-mqtt.log.2']);
  // 3 lines per file: 0-2, 3-5, 6-8 rotated; 9 current; 0-2 deleted.
  assert.equal(readFileSync(path.join(dir, 'butler-mqtt.log'), 'utf8'), line(9));
  assert.equal(readFileSync(path.join(dir, 'butler-mqtt.log.1'), 'utf8'), line(6) + line(7) + line(8));
  assert.equal(readFileSync(path.join(dir, 'butler-mqtt.log.2'), 'utf8'), line(3) + line(4) + line(5));
});

test('appends to an existing file and counts its size', () => {
  const dir = path.join(tmp.dir, 'b');
  const a = new RotatingFile({ dir, name: 'x.log', maxBytes: 25, count: 1 });
  a.write(line(1));
  a.close();
  const b = new RotatingFile({ dir, name: 'x.log', maxBytes: 25, count: 1 });
  b.write(line(2));
  b.write(line(3)); // 30 > 25: rotates first
  b.close();
  assert.equal(readFileSync(path.join(dir, 'x.log.1'), 'utf8'), line(1) + line(2));
  assert.equal(readFileSync(path.join(dir, 'x.log'), 'utf8'), line(3));
});

test('count 0 keeps only the current file; a line longer than maxBytes is still written', () => {
  const dir = path.join(tmp.dir, 'c');
  const f = new RotatingFile({ dir, name: 'y.log', maxBytes: 15, count: 0 });
  f.write(line(1));
  f.write('z'.repeat(40) + '\n');
  f.write(line(2));
  f.close();
  assert.deepEqual(readdirSync(dir), ['y.log']);
  assert.equal(readFileSync(path.join(dir, 'y.log'), 'utf8'), line(2));
  assert.equal(existsSync(path.join(dir, 'y.log.1')), false);
});

test('writes after close are ignored, not thrown', () => {
  const f = new RotatingFile({ dir: path.join(tmp.dir, 'd'), name: 'z.log', maxBytes: 1024, count: 1 });
  f.close();
  f.write(line(1));
  assert.equal(readFileSync(f.file, 'utf8'), '');
});
