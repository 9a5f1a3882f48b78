// Classification of upstream failures and the retry rule, on errors shaped as undici and Node
// raise them (codes nested in the cause chain), plus Retry-After and error-detail reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyFailure, errorCode, mayRepeatFailure, mayRepeatStatus, retryAfterMs } from '../../src/net/upstream-errors.ts';
import { statusDetail } from '../../src/net/upstream.ts';

function wrapped(code: string, message = `failed with ${code}`): Error {
  // undici: TypeError('fetch failed') or SocketError(UND_ERR_SOCKET) with the system error as cause
  const cause = Object.assign(new Error(message), { code });
  return Object.assign(new Error('other side closed', { cause }), { code: 'UND_ERR_SOCKET' });
}

test('the code is read from the cause chain, past undici\'s generic socket code', () => {
  assert.equal(errorCode(wrapped('ECONNRESET')), 'ECONNRESET');
  assert.equal(errorCode(Object.assign(new Error('closed'), { code: 'UND_ERR_SOCKET' })), 'UND_ERR_SOCKET');
  assert.equal(errorCode(new Error('no code')), undefined);
});

test('failures are sorted into timeout, tls and network, with whether the request may have been sent', () => {
  assert.deepEqual(classifyFailure(new Error('aborted'), true), { kind: 'timeout', connecting: false });
  assert.deepEqual(classifyFailure(Object.assign(new Error('t'), { code: 'UND_ERR_HEADERS_TIMEOUT' }), false), { kind: 'timeout', connecting: false });
  assert.deepEqual(classifyFailure(Object.assign(new Error('t'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), false), { kind: 'timeout', connecting: true });
  assert.deepEqual(classifyFailure(wrapped('CERT_HAS_EXPIRED'), false), { kind: 'tls', code: 'CERT_HAS_EXPIRED' });
  assert.deepEqual(classifyFailure(wrapped('ERR_SSL_WRONG_VERSION_NUMBER'), false), { kind: 'tls', code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
  assert.deepEqual(classifyFailure(wrapped('ECONNREFUSED'), false), { kind: 'network', code: 'ECONNREFUSED', sent: false });
  assert.deepEqual(classifyFailure(wrapped('ENOTFOUND'), false), { kind: 'network', code: 'ENOTFOUND', sent: false });
  assert.deepEqual(classifyFailure(wrapped('ECONNRESET'), false), { kind: 'network', code: 'ECONNRESET', sent: true });
  assert.deepEqual(classifyFailure(new Error('strange'), false), { kind: 'network', code: undefined, sent: true });
});

test('a failure is repeated only when it cannot have reached the server, or repeating is harmless', () => {
  const cases: [ReturnType<typeof classifyFailure>, boolean, boolean][] = [
    [{ kind: 'tls', code: 'CERT_HAS_EXPIRED' }, true, false],
    [{ kind: 'tls', code: 'CERT_HAS_EXPIRED' }, false, false],
    [{ kind: 'timeout', connecting: false }, true, true],
    [{ kind: 'timeout', connecting: false }, false, false],
    [{ kind: 'timeout', connecting: true }, false, true],
    [{ kind: 'network', code: 'ECONNRESET', sent: true }, true, true],
    [{ kind: 'network', code: 'ECONNRESET', sent: true }, false, false],
    [{ kind: 'network', code: 'ECONNREFUSED', sent: false }, false, true],
  ];
  for (const [failure, idempotent, expected] of cases) assert.equal(mayRepeatFailure(failure, idempotent), expected, `${JSON.stringify(failure)} idempotent=${idempotent}`);
});

test('answers: 429 repeats for any method, 5xx only when idempotent, the rest never', () => {
  assert.equal(mayRepeatStatus(429, false), true);
  assert.equal(mayRepeatStatus(503, true), true);
  assert.equal(mayRepeatStatus(503, false), false);
  assert.equal(mayRepeatStatus(500, true), true);
  assert.equal(mayRepeatStatus(404, true), false);
  assert.equal(mayRepeatStatus(409, true), false);
  assert.equal(mayRepeatStatus(200, true), false);
});

test('Retry-After in seconds or as a date', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  assert.equal(retryAfterMs('3', now), 3000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs('Sun, 06 Dec 2026 12:00:05 GMT', now), 5000);
  assert.equal(retryAfterMs('Sun, 06 Dec 2026 11:00:00 GMT', now), 0);
  assert.equal(retryAfterMs(['2', '9'], now), 2000);
  assert.equal(retryAfterMs(undefined, now), undefined);
  assert.equal(retryAfterMs('soon', now), undefined);
});

test('the detail of an error answer: Qlik\'s error title and code, else the text on one line', () => {
  assert.equal(statusDetail('{"errors":[{"code":"HTTP-404","title":"App not found","status":"404"}],"traceId":"x"}'), 'App not found (HTTP-404)');
  assert.equal(statusDetail('{"errors":[{"title":"Forbidden"}]}'), 'Forbidden');
  assert.equal(statusDetail('{"message":"no"}'), '{"message":"no"}');
  assert.equal(statusDetail('{broken'), '{broken');
  assert.equal(statusDetail('  line one\r\n\tline two  '), 'line one line two');
  assert.equal(statusDetail('x'.repeat(300)).length, 200);
  assert.equal(statusDetail(''), '');
});
