// A configured secret is masked in every form a log line can carry it: as is, JSON-escaped (once or
// twice), percent-encoded as URL and form encoders write it (either hex case), base64 and base64url,
// and inside a Basic credential `user:password`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createLogger, maskSecrets } from '../../src/observability/logger.ts';

function sink() {
  const lines: string[] = [];
  return { lines, write: (l: string) => void lines.push(l) };
}

const TOKEN = 'tok/en+with "odd" chars&=é ü';

test('a token in a query string, URL-encoded in any common way, is masked in the log line', () => {
  const out = sink();
  const log = createLogger({ level: 'info', pretty: false, destination: out, secrets: [TOKEN] });
  const forms = [
    encodeURIComponent(TOKEN),
    encodeURIComponent(TOKEN).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    new URLSearchParams({ t: TOKEN }).toString().slice(2),
    encodeURI(TOKEN),
  ];
  for (const form of forms) log.info({ url: `https://tenant.example/api?token=${form}&x=1` }, `GET /api?token=${form}`);
  assert.equal(out.lines.length, forms.length);
  for (const [i, line] of out.lines.entries()) {
    const record = JSON.parse(line) as { url: string; msg: string };
    assert.equal(record.url, 'https://tenant.example/api?token=***&x=1', `form ${i}: ${forms[i]}`);
    assert.equal(record.msg, 'GET /api?token=***', `form ${i}`);
  }
});

test('JSON-escaped once and twice, base64, base64url and a Basic credential are masked', () => {
  const out = sink();
  const log = createLogger({ level: 'info', pretty: false, destination: out, secrets: [TOKEN, 'mqtt-user:pa55:word'] });
  const body = JSON.stringify({ token: TOKEN });
  log.info({ body }, 'request body');
  log.info({ nested: JSON.stringify({ body }) }, 'nested');
  log.info(`header x-token: ${Buffer.from(TOKEN).toString('base64')}`);
  log.info(`header x-token: ${Buffer.from(TOKEN).toString('base64url')}`);
  log.info(`authorization: Basic ${Buffer.from('mqtt-user:pa55:word').toString('base64')}`);
  const texts = out.lines.join('\n');
  assert.equal((JSON.parse(out.lines[0]!) as { body: string }).body, '{"token":"***"}');
  assert.equal((JSON.parse(out.lines[1]!) as { nested: string }).nested, '{"body":"{\\"token\\":\\"***\\"}"}');
  assert.equal((JSON.parse(out.lines[2]!) as { msg: string }).msg, 'header x-token: ***');
  assert.equal((JSON.parse(out.lines[3]!) as { msg: string }).msg, 'header x-token: ***');
  assert.equal((JSON.parse(out.lines[4]!) as { msg: string }).msg, 'authorization: Basic ***');
  assert.ok(!texts.includes('odd'), texts);
});

test('property: no printable form of any secret survives maskSecrets', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 3, maxLength: 40, unit: 'grapheme' }), fc.string({ maxLength: 20 }), (secret, around) => {
      const forms = [secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret), new URLSearchParams({ a: secret }).toString().slice(2), Buffer.from(secret).toString('base64')];
      for (const form of forms) {
        const masked = maskSecrets(`${around}[${form}]${around}`, [secret]);
        assert.ok(masked.includes('[***]'), `${JSON.stringify(form)} → ${JSON.stringify(masked)}`);
      }
    }),
    { numRuns: 300 },
  );
});
