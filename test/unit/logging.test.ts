// The logger as configured by Butler.logLevel: levels honoured, human-readable for a terminal, JSON
// otherwise, the log file always JSON, secrets masked in both.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.ts';

function sink() {
  const lines: string[] = [];
  return { lines, write: (l: string) => void lines.push(l) };
}

test('Butler.logLevel warn: info and debug are dropped, warn and error kept', () => {
  const out = sink();
  const log = createLogger({ level: 'warn', pretty: false, destination: out });
  log.debug('d');
  log.info('i');
  log.verbose('v');
  log.warn('w');
  log.error('e');
  assert.deepEqual(
    out.lines.map((l) => (JSON.parse(l) as { level: string; msg: string }).msg),
    ['w', 'e'],
  );
});

test("Butler's verbose sits between info and debug", () => {
  const out = sink();
  const log = createLogger({ level: 'verbose', pretty: false, destination: out });
  log.debug('d');
  log.verbose('v');
  log.info('i');
  assert.deepEqual(
    out.lines.map((l) => JSON.parse(l) as { level: string; msg: string }).map((r) => `${r.level}:${r.msg}`),
    ['verbose:v', 'info:i'],
  );
});

test('pretty for people on the console, JSON lines in the file, the secret masked in both', () => {
  // pino-pretty writes to a stream.
  const out = { lines: [] as string[] };
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.lines.push(chunk.toString());
      done();
    },
  });
  const file = sink();
  const log = createLogger({ level: 'info', pretty: true, destination: stream, file, secrets: ['s3cret-value'] });
  log.info({ password: 's3cret-value' }, 'connecting with s3cret-value');
  const consoleText = out.lines.join('');
  assert.ok(consoleText.includes('INFO'), consoleText);
  assert.ok(consoleText.includes('connecting with ***'), consoleText);
  assert.throws(() => JSON.parse(consoleText.trim()), 'the console line is not JSON');
  assert.equal(file.lines.length, 1);
  const record = JSON.parse(file.lines[0]!) as Record<string, unknown>;
  assert.equal(record['msg'], 'connecting with ***');
  assert.equal(record['password'], '***');
  assert.equal(record['level'], 'info');
  assert.ok(!consoleText.includes('s3cret-value') && !file.lines[0]!.includes('s3cret-value'));
});
