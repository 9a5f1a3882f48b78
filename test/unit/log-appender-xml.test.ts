// The Sense LocalLogConfig.xml builders: the proxy file in full, the scheduler file's appenders,
// filters, logger and pattern, XML escaping and well-formedness, and host/port validation. The
// patterns are also "rendered" with sample values and fed to the UDP parsers, which proves the
// field order matches what butler-mqtt reads.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  escapeXml,
  logAppenderXml,
  proxyLogConfigXml,
  schedulerLogConfigXml,
  validateAppenderTarget,
  type AppenderTarget,
} from '../../src/sense/log-appender-xml.ts';
import { parseDatagram } from '../../src/sense/datagram.ts';
import { parseUserEvent } from '../../src/sense/user-event.ts';

function xml(build: (t: AppenderTarget) => ReturnType<typeof schedulerLogConfigXml>, target: AppenderTarget): string {
  const r = build(target);
  if (!r.ok) assert.fail(`expected XML, got ${r.error.reason}: ${r.error.detail}`);
  return r.value;
}

/** A small well-formedness check: balanced elements, quoted attributes, no stray < or &. */
function assertWellFormed(text: string): void {
  assert.ok(text.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n'), 'XML declaration first');
  const token = /<!--([\s\S]*?)-->|<\?[\s\S]*?\?>|<\/([A-Za-z][\w.-]*)\s*>|<([A-Za-z][\w.-]*)((?:\s+[A-Za-z][\w.-]*="[^"<&]*(?:&(?:amp|lt|gt|quot|apos);[^"<&]*)*")*)\s*(\/?)>|([^<]+)/gy;
  const stack: string[] = [];
  let roots = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while (pos < text.length && (m = token.exec(text)) !== null) {
    pos = token.lastIndex;
    const [, comment, close, open, , selfClosing, chars] = m;
    if (comment !== undefined) {
      assert.ok(!comment.includes('--') && !comment.endsWith('-'), `comment must not contain "--": ${comment}`);
    } else if (close !== undefined) {
      assert.equal(stack.pop(), close, `closing </${close}>`);
    } else if (open !== undefined) {
      if (stack.length === 0) roots += 1;
      if (selfClosing !== '/') stack.push(open);
    } else if (chars !== undefined) {
      assert.ok(stack.length > 0 || chars.trim() === '', 'no text outside the root element');
      assert.ok(!/&(?!(?:amp|lt|gt|quot|apos);)/.test(chars), 'no bare & in text');
    }
  }
  assert.equal(pos, text.length, `could not read XML at offset ${pos}: ${JSON.stringify(text.slice(pos, pos + 40))}`);
  assert.deepEqual(stack, [], 'every element closed');
  assert.equal(roots, 1, 'one root element');
}

/** Stands in for log4net: fills a conversion pattern with sample values for one log event. */
function render(pattern: string, hostname: string, props: Record<string, string>, event: { date: string; level: string; message: string }): string {
  return pattern
    .replace(/%property\{(\w+)\}/g, (_, name: string) => props[name] ?? '')
    .replace('%hostname', hostname)
    .replace('%date', event.date)
    .replace('%level', event.level)
    .replace('%message', event.message);
}

function patterns(text: string): string[] {
  return [...text.matchAll(/<param name="conversionPattern" value="([^"]*)" \/>/g)].map((m) => m[1] ?? '');
}

const PROXY_FILE = `<?xml version="1.0" encoding="UTF-8"?>
<!--
  Qlik Sense Proxy log appenders for butler-mqtt: user session start/stop and connection open/close.
  Save as C:\\ProgramData\\Qlik\\Sense\\Proxy\\LocalLogConfig.xml on every server that runs the
  Qlik Sense Proxy Service (merge the appenders and logger into an existing file there).
  Sense notices the file within minutes; restarting the proxy service applies it at once.
  Each matching log line is sent as one UTF-8 UDP datagram to 10.0.0.7:9997.
-->
<configuration>

  <!-- User session started or stopped. -->
  <appender name="ButlerMqttProxySession" type="log4net.Appender.UdpAppender">
    <filter type="log4net.Filter.StringMatchFilter">
      <param name="stringToMatch" value="Start session for user" />
    </filter>
    <filter type="log4net.Filter.StringMatchFilter">
      <param name="stringToMatch" value="Stop session for user" />
    </filter>
    <filter type="log4net.Filter.DenyAllFilter" />
    <param name="remoteAddress" value="10.0.0.7" />
    <param name="remotePort" value="9997" />
    <param name="encoding" value="utf-8" />
    <layout type="log4net.Layout.PatternLayout">
      <converter>
        <param name="name" value="hostname" />
        <param name="type" value="Qlik.Sense.Logging.log4net.Layout.Pattern.HostNamePatternConverter" />
      </converter>
      <param name="conversionPattern" value="/qseow-proxy-session/;%hostname;%property{Command};%property{UserDirectory};%property{UserId};%property{Origin};%property{Context};%message" />
    </layout>
  </appender>

  <!-- Connection opened or closed within a user session. -->
  <appender name="ButlerMqttProxyConnection" type="log4net.Appender.UdpAppender">
    <filter type="log4net.Filter.StringMatchFilter">
      <param name="stringToMatch" value="connection Opened for session" />
    </filter>
    <filter type="log4net.Filter.StringMatchFilter">
      <param name="stringToMatch" value="connection Closed for session" />
    </filter>
    <filter type="log4net.Filter.DenyAllFilter" />
    <param name="remoteAddress" value="10.0.0.7" />
    <param name="remotePort" value="9997" />
    <param name="encoding" value="utf-8" />
    <layout type="log4net.Layout.PatternLayout">
      <converter>
        <param name="name" value="hostname" />
        <param name="type" value="Qlik.Sense.Logging.log4net.Layout.Pattern.HostNamePatternConverter" />
      </converter>
      <param name="conversionPattern" value="/qseow-proxy-connection/;%hostname;%property{Command};%property{UserDirectory};%property{UserId};%property{Origin};%property{Context};%message" />
    </layout>
  </appender>

  <logger name="AuditActivity.Proxy">
    <appender-ref ref="ButlerMqttProxySession" />
    <appender-ref ref="ButlerMqttProxyConnection" />
  </logger>
</configuration>
`;

describe('scheduler LocalLogConfig.xml', () => {
  const text = xml(schedulerLogConfigXml, { host: 'butler.corp.example', port: 9998 });

  it('is well-formed XML', () => {
    assertWellFormed(text);
  });

  it('has one UdpAppender each for failed, aborted and success, with the 11-field patterns in order', () => {
    assert.deepEqual(patterns(text), [
      '/scheduler-reload-failed/;%hostname;%property{TaskName};%property{AppName};%property{User};%property{TaskId};%property{AppId};%date;%level;%property{ExecutionId};%message',
      '/scheduler-reload-aborted/;%hostname;%property{TaskName};%property{AppName};%property{User};%property{TaskId};%property{AppId};%date;%level;%property{ExecutionId};%message',
      '/scheduler-reloadtask-success/;%hostname;%property{TaskName};%property{AppName};%property{User};%property{TaskId};%property{AppId};%date;%level;%property{ExecutionId};%message',
    ]);
    assert.equal(text.match(/type="log4net\.Appender\.UdpAppender"/g)?.length, 3);
  });

  it('filters each appender to its one log line and denies the rest', () => {
    const matches = [...text.matchAll(/<param name="stringToMatch" value="([^"]*)" \/>/g)].map((m) => m[1]);
    assert.deepEqual(matches, ['Max retries reached', 'Execution State Change to Aborting', 'Execution State Change to FinishedSuccess']);
    assert.equal(text.match(/<filter type="log4net\.Filter\.DenyAllFilter" \/>/g)?.length, 3);
  });

  it('sends to the given host and port as UTF-8', () => {
    assert.equal(text.match(/<param name="remoteAddress" value="butler\.corp\.example" \/>/g)?.length, 3);
    assert.equal(text.match(/<param name="remotePort" value="9998" \/>/g)?.length, 3);
    assert.equal(text.match(/<param name="encoding" value="utf-8" \/>/g)?.length, 3);
  });

  it('attaches the appenders to the scheduler task-session logger', () => {
    assert.ok(
      text.includes(
        '  <logger name="System.Scheduler.Scheduler.Master.Task.TaskSession">\n' +
          '    <appender-ref ref="ButlerMqttReloadFailed" />\n' +
          '    <appender-ref ref="ButlerMqttReloadAborted" />\n' +
          '    <appender-ref ref="ButlerMqttReloadSuccess" />\n' +
          '  </logger>\n</configuration>\n',
      ),
    );
  });

  it('produces datagrams the UDP parser reads into the right fields', () => {
    const [failed, aborted, success] = patterns(text);
    const props = {
      TaskName: 'Nightly finance reload',
      AppName: 'Finance dashboard',
      User: 'CORP\\anna',
      TaskId: '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f',
      AppId: '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
      ExecutionId: '7be1c2d3-5555-4aaa-8bbb-000000000001',
    };
    const sample = { date: '2026-11-20 02:03:12,345', level: 'ERROR', message: 'Max retries reached; giving up' };
    const r = parseDatagram(render(failed ?? '', 'sense-sched-1', props, sample));
    assert.ok(r.ok);
    assert.deepEqual(r.value.fields, [
      '/scheduler-reload-failed/',
      'sense-sched-1',
      'Nightly finance reload',
      'Finance dashboard',
      'CORP\\anna',
      '9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f',
      '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
      '2026-11-20 02:03:12,345',
      'ERROR',
      '7be1c2d3-5555-4aaa-8bbb-000000000001',
      'Max retries reached; giving up',
    ]);
    const a = parseDatagram(render(aborted ?? '', 'h', props, sample));
    assert.equal(a.ok && a.value.type, 'aborted');
    const s = parseDatagram(render(success ?? '', 'h', props, sample));
    assert.equal(s.ok && s.value.type, 'success');
  });
});

describe('proxy LocalLogConfig.xml', () => {
  it('is exactly the expected file (host trimmed)', () => {
    assert.equal(xml(proxyLogConfigXml, { host: ' 10.0.0.7 ', port: 9997 }), PROXY_FILE);
  });

  it('is well-formed XML', () => {
    assertWellFormed(PROXY_FILE);
    assertWellFormed(xml(proxyLogConfigXml, { host: 'h', port: 1 }));
  });

  it('produces datagrams the user-event parser reads into the right fields', () => {
    const [session, connection] = patterns(xml(proxyLogConfigXml, { host: 'h', port: 9997 }));
    const props = { Command: 'Start session', UserDirectory: 'CORP', UserId: 'anna', Origin: 'AppAccess', Context: '/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f' };
    const r = parseUserEvent(render(session ?? '', 'sense-proxy-1', props, { date: '', level: '', message: 'Start session for user CORP\\anna; ok' }));
    assert.ok(r.ok);
    assert.deepEqual(r.value, {
      messageType: 'session',
      host: 'sense-proxy-1',
      command: 'Start session',
      userDirectory: 'CORP',
      userId: 'anna',
      origin: 'AppAccess',
      context: '/app/2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
      message: 'Start session for user CORP\\anna; ok',
      appId: '2c7e8f90-1a2b-4c3d-9e8f-7a6b5c4d3e2f',
    });
    const c = parseUserEvent(render(connection ?? '', 'h', { ...props, Command: 'Close connection' }, { date: '', level: '', message: 'm' }));
    assert.equal(c.ok && c.value.messageType, 'connection');
  });

  it('logAppenderXml picks the file by kind', () => {
    const target = { host: '10.0.0.7', port: 9997 };
    assert.deepEqual(logAppenderXml('proxy', target), { ok: true, value: PROXY_FILE });
    const s = logAppenderXml('scheduler', target);
    assert.ok(s.ok && s.value.includes('System.Scheduler.Scheduler.Master.Task.TaskSession'));
  });
});

describe('escaping and validation', () => {
  it('the well-formedness check itself catches broken XML', () => {
    const decl = '<?xml version="1.0" encoding="UTF-8"?>\n';
    assert.throws(() => assertWellFormed(`${decl}<a><b></a>`));
    assert.throws(() => assertWellFormed(`${decl}<a x="1&2" />`));
    assert.throws(() => assertWellFormed(`${decl}<a x="<" />`));
    assert.throws(() => assertWellFormed(`${decl}<!-- a--b --><a />`));
    assert.throws(() => assertWellFormed(`${decl}<a /><b />`));
    assertWellFormed(`${decl}<a x="1&amp;2"><b /></a>`);
  });

  it('escapes the five XML special characters', () => {
    assert.equal(escapeXml(`a&b<c>d"e'f`), 'a&amp;b&lt;c&gt;d&quot;e&apos;f');
  });

  it('escapes an unusual host in attributes and keeps comments free of "--"', () => {
    const text = xml(schedulerLogConfigXml, { host: 'a&b"<c>--d-', port: 65535 });
    assertWellFormed(text);
    assert.equal(text.match(/<param name="remoteAddress" value="a&amp;b&quot;&lt;c&gt;--d-" \/>/g)?.length, 3);
    assert.ok(text.includes('  Each matching log line is sent as one UTF-8 UDP datagram to a&b"<c>- -d-:65535.\n'));
  });

  it('accepts IPv6 literals and international names as given', () => {
    assert.deepEqual(validateAppenderTarget({ host: 'fd00::7', port: 9998 }), { ok: true, value: { host: 'fd00::7', port: 9998 } });
    assert.deepEqual(validateAppenderTarget({ host: 'bütler.example', port: 1 }), { ok: true, value: { host: 'bütler.example', port: 1 } });
  });

  it('refuses an empty or blank host', () => {
    for (const host of ['', '   ', '\t']) {
      assert.deepEqual(schedulerLogConfigXml({ host, port: 9998 }), { ok: false, error: { reason: 'invalid_host', detail: 'host must not be empty' } });
    }
  });

  it('refuses a host with whitespace or control characters inside, such as a template placeholder', () => {
    assert.deepEqual(proxyLogConfigXml({ host: '<FQDN or IP of server>', port: 9997 }), {
      ok: false,
      error: { reason: 'invalid_host', detail: 'host "<FQDN or IP of server>" must not contain whitespace or control characters' },
    });
    assert.equal(validateAppenderTarget({ host: 'a\u0000b', port: 1 }).ok, false);
  });

  it('refuses ports outside 1-65535 and non-integers', () => {
    for (const port of [0, -1, 65536, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const r = schedulerLogConfigXml({ host: 'h', port });
      assert.deepEqual(r, { ok: false, error: { reason: 'invalid_port', detail: `port must be an integer 1-65535, got ${String(port)}` } });
    }
    assert.equal(schedulerLogConfigXml({ host: 'h', port: 1 }).ok, true);
    assert.equal(schedulerLogConfigXml({ host: 'h', port: 65535 }).ok, true);
  });
});
