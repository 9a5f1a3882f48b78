// Builds the Sense `LocalLogConfig.xml` (log4net) files that make Qlik Sense send its events to
// butler-mqtt over UDP: the scheduler file for reload failed/aborted/success and the
// proxy file for user sessions and connections. Pure text builders; printing is the CLI's job.
import type { Result } from './datagram.ts';

export interface AppenderTarget {
  /** Host name or IP address of the machine running butler-mqtt, as the Sense server can reach it. */
  host: string;
  /** The UDP port butler-mqtt listens on (udpServerConfig.portTaskFailure, or the session/connection port). */
  port: number;
}

export type AppenderXmlErrorReason = 'invalid_host' | 'invalid_port';

export interface AppenderXmlError {
  reason: AppenderXmlErrorReason;
  detail: string;
}

export type AppenderKind = 'scheduler' | 'proxy';

/** Escapes text for use inside a double-quoted XML attribute value (or element text). */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * Checks host and port. The host is trimmed and must then be non-empty and free of whitespace
 * and control characters (a placeholder such as `<FQDN or IP>` is refused for its spaces); other
 * characters are left to XML escaping, so internationalised names and IPv6 literals pass.
 */
export function validateAppenderTarget(target: AppenderTarget): Result<AppenderTarget, AppenderXmlError> {
  const host = target.host.trim();
  if (host === '') return { ok: false, error: { reason: 'invalid_host', detail: 'host must not be empty' } };
  if (/[\s\u0000-\u001f\u007f]/.test(host)) {
    return {
      ok: false,
      error: { reason: 'invalid_host', detail: `host ${JSON.stringify(host)} must not contain whitespace or control characters` },
    };
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    return { ok: false, error: { reason: 'invalid_port', detail: `port must be an integer 1-65535, got ${String(target.port)}` } };
  }
  return { ok: true, value: { host, port: target.port } };
}

/** The file for the log appender of the given Sense service. */
export function logAppenderXml(kind: AppenderKind, target: AppenderTarget): Result<string, AppenderXmlError> {
  return kind === 'scheduler' ? schedulerLogConfigXml(target) : proxyLogConfigXml(target);
}

// The scheduler's TaskSession logger sets these log4net properties on each task-execution line;
// %hostname needs the converter Qlik ships with Sense. The order is the 11-field layout the UDP
// parser expects: type;host;taskName;appName;user;taskId;appId;logTimestamp;logLevel;executionId;message.
// %date is log4net's ISO 8601 form (2026-11-20 02:03:12,345), which holds no `;`. The message comes
// last because it is free text and may contain `;`; a `;` in a task or app name still shifts the
// fields, and such a datagram is refused by the id checks rather than misread.
const SCHEDULER_FIELDS =
  '%hostname;%property{TaskName};%property{AppName};%property{User};%property{TaskId};%property{AppId};%date;%level;%property{ExecutionId};%message';

// The proxy's audit logger sets these properties on session and connection lines:
// type;host;command;userDirectory;userId;origin;context;message.
const PROXY_FIELDS =
  '%hostname;%property{Command};%property{UserDirectory};%property{UserId};%property{Origin};%property{Context};%message';

interface AppenderSpec {
  name: string;
  comment: string;
  /** Log-message fragments; a line containing any of them is sent, every other line is dropped. */
  matches: string[];
  pattern: string;
}

/**
 * LocalLogConfig.xml for the Qlik Sense Scheduler Service: three UdpAppenders on the
 * `System.Scheduler.Scheduler.Master.Task.TaskSession` logger, each with StringMatchFilters
 * followed by a DenyAllFilter so only the one line per execution that ends it is sent.
 */
export function schedulerLogConfigXml(target: AppenderTarget): Result<string, AppenderXmlError> {
  const checked = validateAppenderTarget(target);
  if (!checked.ok) return checked;
  const { host, port } = checked.value;
  const appenders: AppenderSpec[] = [
    {
      name: 'ButlerMqttReloadFailed',
      comment: 'Reload task failed: "Max retries reached" is logged once the last retry has failed, so once per execution.',
      matches: ['Max retries reached'],
      pattern: `/scheduler-reload-failed/;${SCHEDULER_FIELDS}`,
    },
    {
      name: 'ButlerMqttReloadAborted',
      comment: 'Reload task aborted, from the QMC or through the API: the execution enters the Aborting state.',
      matches: ['Execution State Change to Aborting'],
      pattern: `/scheduler-reload-aborted/;${SCHEDULER_FIELDS}`,
    },
    {
      name: 'ButlerMqttReloadSuccess',
      comment: 'Reload task succeeded. butler-mqtt publishes these only when a success topic is configured.',
      matches: ['Execution State Change to FinishedSuccess'],
      pattern: `/scheduler-reloadtask-success/;${SCHEDULER_FIELDS}`,
    },
  ];
  return {
    ok: true,
    value: renderFile({
      header: [
        'Qlik Sense Scheduler log appenders for butler-mqtt: reload task failed, aborted and succeeded.',
        'Save as C:\\ProgramData\\Qlik\\Sense\\Scheduler\\LocalLogConfig.xml on every server that runs the',
        'Qlik Sense Scheduler Service (merge the appenders and logger into an existing file there).',
        'Sense notices the file within minutes; restarting the scheduler service applies it at once.',
        `Each matching log line is sent as one UTF-8 UDP datagram to ${host}:${port}.`,
      ],
      host,
      port,
      appenders,
      logger: 'System.Scheduler.Scheduler.Master.Task.TaskSession',
    }),
  };
}

/**
 * LocalLogConfig.xml for the Qlik Sense Proxy Service: two UdpAppenders on the
 * `AuditActivity.Proxy` logger, one for session start/stop and one for connection open/close.
 */
export function proxyLogConfigXml(target: AppenderTarget): Result<string, AppenderXmlError> {
  const checked = validateAppenderTarget(target);
  if (!checked.ok) return checked;
  const { host, port } = checked.value;
  const appenders: AppenderSpec[] = [
    {
      name: 'ButlerMqttProxySession',
      comment: 'User session started or stopped.',
      matches: ['Start session for user', 'Stop session for user'],
      pattern: `/qseow-proxy-session/;${PROXY_FIELDS}`,
    },
    {
      name: 'ButlerMqttProxyConnection',
      comment: 'Connection opened or closed within a user session.',
      matches: ['connection Opened for session', 'connection Closed for session'],
      pattern: `/qseow-proxy-connection/;${PROXY_FIELDS}`,
    },
  ];
  return {
    ok: true,
    value: renderFile({
      header: [
        'Qlik Sense Proxy log appenders for butler-mqtt: user session start/stop and connection open/close.',
        'Save as C:\\ProgramData\\Qlik\\Sense\\Proxy\\LocalLogConfig.xml on every server that runs the',
        'Qlik Sense Proxy Service (merge the appenders and logger into an existing file there).',
        'Sense notices the file within minutes; restarting the proxy service applies it at once.',
        `Each matching log line is sent as one UTF-8 UDP datagram to ${host}:${port}.`,
      ],
      host,
      port,
      appenders,
      logger: 'AuditActivity.Proxy',
    }),
  };
}

function renderFile(f: { header: string[]; host: string; port: number; appenders: AppenderSpec[]; logger: string }): string {
  const lines: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!--',
    ...f.header.map((l) => `  ${xmlComment(l)}`),
    '-->',
    '<configuration>',
  ];
  for (const a of f.appenders) {
    lines.push(
      '',
      `  <!-- ${xmlComment(a.comment)} -->`,
      `  <appender name="${escapeXml(a.name)}" type="log4net.Appender.UdpAppender">`,
      ...a.matches.flatMap((m) => [
        '    <filter type="log4net.Filter.StringMatchFilter">',
        `      <param name="stringToMatch" value="${escapeXml(m)}" />`,
        '    </filter>',
      ]),
      '    <filter type="log4net.Filter.DenyAllFilter" />',
      // log4net resolves a host name given as remoteAddress through DNS when the file is loaded.
      `    <param name="remoteAddress" value="${escapeXml(f.host)}" />`,
      `    <param name="remotePort" value="${escapeXml(String(f.port))}" />`,
      '    <param name="encoding" value="utf-8" />',
      '    <layout type="log4net.Layout.PatternLayout">',
      '      <converter>',
      '        <param name="name" value="hostname" />',
      '        <param name="type" value="Qlik.Sense.Logging.log4net.Layout.Pattern.HostNamePatternConverter" />',
      '      </converter>',
      `      <param name="conversionPattern" value="${escapeXml(a.pattern)}" />`,
      '    </layout>',
      '  </appender>',
    );
  }
  lines.push(
    '',
    `  <logger name="${escapeXml(f.logger)}">`,
    ...f.appenders.map((a) => `    <appender-ref ref="${escapeXml(a.name)}" />`),
    '  </logger>',
    '</configuration>',
    '',
  );
  return lines.join('\n');
}

// An XML comment must not contain "--" nor end with "-"; host names may contain hyphens.
function xmlComment(text: string): string {
  return text.replace(/-(?=-)/g, '- ').replace(/-$/, '- ');
}
