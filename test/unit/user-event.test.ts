// Proxy session/connection datagrams: both layouts, app id extraction from the context, command
// matching, sanitising, and each typed rejection, with expected values written out by hand.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appIdFromContext, parseUserEvent, type UserEvent } from '../../src/sense/user-event.ts';

const APP_ID = '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f';

function accepted(input: Buffer | string): UserEvent {
  const r = parseUserEvent(input);
  if (!r.ok) assert.fail(`expected the datagram to be accepted, got ${r.error.reason}: ${r.error.detail}`);
  return r.value;
}

function rejected(input: Buffer | string): { reason: string; detail: string } {
  const r = parseUserEvent(input);
  if (r.ok) assert.fail(`expected a rejection, got ${r.value.command}`);
  return r.error;
}

describe('parseUserEvent: 8-field form', () => {
  it('reads a session start with an app context', () => {
    const text = `/qseow-proxy-session/;sense-proxy-1;Start session;CORP;anna;https://sense.corp.example;/app/${APP_ID};Start session for user 'CORP\\anna'`;
    assert.deepEqual(accepted(text), {
      messageType: 'session',
      host: 'sense-proxy-1',
      command: 'Start session',
      userDirectory: 'CORP',
      userId: 'anna',
      origin: 'https://sense.corp.example',
      context: '/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
      message: "Start session for user 'CORP\\anna'",
      appId: '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
    });
  });

  it('reads a connection close without app context and leaves appId out', () => {
    const e = accepted('/qseow-proxy-connection/;sense-proxy-1;Close connection;CORP;bo;AppAccess;/hub;connection Closed for session');
    assert.deepEqual(e, {
      messageType: 'connection',
      host: 'sense-proxy-1',
      command: 'Close connection',
      userDirectory: 'CORP',
      userId: 'bo',
      origin: 'AppAccess',
      context: '/hub',
      message: 'connection Closed for session',
    });
    assert.equal(Object.hasOwn(e, 'appId'), false);
  });

  it('keeps ; inside the message field', () => {
    const e = accepted('/qseow-proxy-session/;h;Stop session;CORP;anna;o;/hub;a;b; UserAgent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)');
    assert.equal(e.message, 'a;b; UserAgent: Mozilla/5.0 (Windows NT 10.0; Win64; x64)');
  });

  it('takes messageType from the type field', () => {
    assert.equal(accepted('/qseow-proxy-connection/;h;Open connection;D;u;o;c;m').messageType, 'connection');
    assert.equal(accepted('/qseow-proxy-session/;h;Open connection;D;u;o;c;m').messageType, 'session');
  });

  it('matches type and command case-insensitively and reports the canonical command', () => {
    const e = accepted('/QSEOW-Proxy-Session/;h;START SESSION;D;u;o;c;m');
    assert.equal(e.messageType, 'session');
    assert.equal(e.command, 'Start session');
    assert.equal(accepted('/qseow-proxy-connection/;h;open CONNECTION;D;u;o;c;m').command, 'Open connection');
  });

  it("accepts the type names of Butler's documented appender file", () => {
    assert.equal(accepted('/proxy-session/;h;Start session;D;u;o;c;m').messageType, 'session');
    assert.equal(accepted('/proxy-connection/;h;Close connection;D;u;o;c;m').messageType, 'connection');
  });

  it('sanitises every field: control characters deleted, 500 characters kept', () => {
    const text = `/qseow-proxy-session/;h\u0001;Start session;CO\tRP;an\u007fna;o;c;${'0123456789'.repeat(60)}\r\n`;
    const e = accepted(text);
    assert.equal(e.host, 'h');
    assert.equal(e.userDirectory, 'CORP');
    assert.equal(e.userId, 'anna');
    assert.equal(e.message, '0123456789'.repeat(50));
  });

  it('does not trim fields (a command with surrounding spaces is not one of the four)', () => {
    assert.deepEqual(rejected('/qseow-proxy-session/;h; Start session;D;u;o;c;m'), {
      reason: 'unknown_command',
      detail: 'unknown command " Start session"',
    });
  });
});

describe('parseUserEvent: older 4-field form', () => {
  const table: [string, UserEvent['command'], UserEvent['messageType']][] = [
    ['Start session', 'Start session', 'session'],
    ['Stop session', 'Stop session', 'session'],
    ['Open connection', 'Open connection', 'connection'],
    ['Close connection', 'Close connection', 'connection'],
  ];
  for (const [raw, command, messageType] of table) {
    it(`derives messageType ${messageType} from "${raw}"`, () => {
      assert.deepEqual(accepted(`sense-proxy-1;${raw};CORP;anna`), {
        messageType,
        host: 'sense-proxy-1',
        command,
        userDirectory: 'CORP',
        userId: 'anna',
        origin: '',
        context: '',
        message: '',
      });
    });
  }

  it('tolerates a trailing newline', () => {
    assert.equal(accepted('sense-proxy-1;Stop session;CORP;anna\r\n').userId, 'anna');
  });

  it('refuses an unknown command', () => {
    assert.deepEqual(rejected('sense-proxy-1;Login;CORP;anna'), { reason: 'unknown_command', detail: 'unknown command "Login"' });
  });

  it('refuses other field counts without a type', () => {
    assert.deepEqual(rejected('sense-proxy-1;Start session;CORP'), {
      reason: 'field_count',
      detail: 'expected 4 fields (host;command;userDirectory;userId) or a /qseow-proxy-…/ type, got 3',
    });
    assert.equal(rejected('sense-proxy-1;Start session;CORP;anna;extra').reason, 'field_count');
    assert.equal(rejected('just text').reason, 'field_count');
  });
});

describe('parseUserEvent: rejections', () => {
  it('refuses an unknown /…/ type', () => {
    assert.deepEqual(rejected('/qseow-proxy-login/;h;Start session;D;u;o;c;m'), {
      reason: 'unknown_type',
      detail: 'unknown message type "/qseow-proxy-login/"',
    });
    assert.equal(rejected('/scheduler-reload-failed/;h;t;a;u;;;2026;ERROR;;m').reason, 'unknown_type');
  });

  it('refuses fewer than 8 fields in the typed form', () => {
    assert.deepEqual(rejected('/qseow-proxy-session/;h;Start session;D;u;o;c'), {
      reason: 'field_count',
      detail: 'expected 8 fields, got 7',
    });
  });

  it('refuses an unknown command in the typed form', () => {
    assert.deepEqual(rejected('/qseow-proxy-connection/;h;Reopen connection;D;u;o;c;m'), {
      reason: 'unknown_command',
      detail: 'unknown command "Reopen connection"',
    });
  });

  it('refuses bytes that are not UTF-8, and unpaired surrogates', () => {
    assert.equal(rejected(Buffer.from([0x68, 0x3b, 0xc0, 0xaf])).reason, 'not_utf8');
    assert.equal(rejected('h;Start session;D;\udbff').reason, 'not_utf8');
  });

  it('refuses empty and blank datagrams', () => {
    for (const input of ['', '\n', ' \t ', Buffer.alloc(0)]) {
      assert.deepEqual(rejected(input), { reason: 'empty', detail: 'datagram is empty' });
    }
  });
});

describe('appIdFromContext', () => {
  it('finds the app id at the start of the context, followed by the end, /, ? or #', () => {
    assert.equal(appIdFromContext(`/app/${APP_ID}`), APP_ID);
    assert.equal(appIdFromContext(`/app/${APP_ID}/sheet/abc/state/analysis`), APP_ID);
    assert.equal(appIdFromContext(`/app/${APP_ID}?reloaduri=x`), APP_ID);
    assert.equal(appIdFromContext(`/app/${APP_ID}#top`), APP_ID);
    assert.equal(appIdFromContext('/app/2C7E8F90-1A2B-4C3D-9E8F-7A6B5C4D3E2F'), '2C7E8F90-1A2B-4C3D-9E8F-7A6B5C4D3E2F');
  });

  it('finds nothing elsewhere', () => {
    for (const context of ['', '/hub', '/app/', '/app/not-a-guid', `/app/${APP_ID}x`, `/app/${APP_ID}-1`, `/vp/app/${APP_ID}`, `app/${APP_ID}`]) {
      assert.equal(appIdFromContext(context), undefined, context);
    }
  });
});
