// `butler-mqtt send-test-event`: sends one datagram shaped like the Sense scheduler's (or proxy's)
// log appender output, so the whole path (UDP, QRS enrichment, MQTT) can be tried without waiting for
// a reload to fail or a user to log in. A new executionId each time unless one is given, so
// deduplication does not hide it.
import dgram from 'node:dgram';
import os from 'node:os';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { isGuid } from '../sense/datagram.ts';

export type TestEventKind = 'failed' | 'aborted' | 'success';

export interface TestEventFields {
  kind: TestEventKind;
  hostName: string;
  taskName: string;
  appName: string;
  taskId: string;
  appId: string;
  executionId: string;
  /** log4net's %date form: 2026-11-20 02:03:12,345 */
  timestamp: string;
}

// The type strings and log lines the appenders printed by `appender-xml` match on.
const SHAPES: Record<TestEventKind, { type: string; level: string; message: string }> = {
  failed: { type: '/scheduler-reload-failed/', level: 'INFO', message: 'Max retries reached' },
  aborted: { type: '/scheduler-reload-aborted/', level: 'INFO', message: 'Execution State Change to Aborting' },
  success: { type: '/scheduler-reloadtask-success/', level: 'INFO', message: 'Execution State Change to FinishedSuccess' },
};

export type UserTestEventKind = 'session-start' | 'session-stop' | 'connection-open' | 'connection-close';

// The proxy's commands, and log lines the appenders printed by `appender-xml --service proxy` match on.
const USER_SHAPES: Record<UserTestEventKind, { type: string; command: string; message: (user: string) => string }> = {
  'session-start': { type: '/qseow-proxy-session/', command: 'Start session', message: (user) => `Start session for user '${user}'` },
  'session-stop': { type: '/qseow-proxy-session/', command: 'Stop session', message: (user) => `Stop session for user '${user}'` },
  'connection-open': { type: '/qseow-proxy-connection/', command: 'Open connection', message: () => 'connection Opened for session' },
  'connection-close': { type: '/qseow-proxy-connection/', command: 'Close connection', message: () => 'connection Closed for session' },
};

export function isUserTestEventKind(kind: string): kind is UserTestEventKind {
  return Object.hasOwn(USER_SHAPES, kind);
}

/** The proxy datagram text: type;host;command;userDirectory;userId;origin;context;message. */
export function userTestEventDatagram(kind: UserTestEventKind, f: { hostName: string; userDirectory: string; userId: string }): string {
  const shape = USER_SHAPES[kind];
  return [shape.type, f.hostName, shape.command, f.userDirectory, f.userId, 'butler-mqtt', '/hub', shape.message(`${f.userDirectory}\\${f.userId}`)].join(';');
}

/** log4net's default %date layout, in local time. */
export function log4netDate(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`;
}

/** The datagram text: type;host;taskName;appName;user;taskId;appId;timestamp;level;executionId;message. */
export function testEventDatagram(f: TestEventFields): string {
  const shape = SHAPES[f.kind];
  // The scheduler writes the service user with a doubled backslash.
  const user = 'INTERNAL\\\\sa_scheduler';
  return [shape.type, f.hostName, f.taskName, f.appName, user, f.taskId, f.appId, f.timestamp, shape.level, f.executionId, shape.message].join(';');
}

interface Options {
  host: string;
  port?: string;
  userDirectory: string;
  userId: string;
  taskId?: string;
  appId?: string;
  taskName: string;
  appName: string;
  executionId?: string;
}

function fail(message: string): never {
  process.stderr.write(`butler-mqtt send-test-event: ${message}\n`);
  process.exit(2);
}

export function registerSendTestEvent(program: Command): void {
  program
    .command('send-test-event')
    .description('send one Sense scheduler datagram (reload failed, aborted or succeeded) or proxy datagram (session start/stop, connection open/close) to butler-mqtt over UDP')
    .argument('<kind>', 'failed, aborted or success; session-start, session-stop, connection-open or connection-close')
    .option('--host <host>', 'butler-mqtt host', '127.0.0.1')
    .option('--port <port>', 'butler-mqtt UDP port (default 9998, udpServerConfig.portTaskFailure; for session and connection kinds 9997, portSessionConnectionEvents)')
    .option('--user-directory <dir>', 'user directory of a session or connection event', 'BUTLER-MQTT')
    .option('--user-id <id>', 'user id of a session or connection event', 'test-user')
    .option('--task-id <guid>', 'reload task id (a real one, for QRS enrichment; default: a random GUID)')
    .option('--app-id <guid>', 'app id (default: a random GUID)')
    .option('--task-name <name>', 'task name', 'butler-mqtt test task')
    .option('--app-name <name>', 'app name', 'butler-mqtt test app')
    .option('--execution-id <guid>', 'execution id (default: a new random GUID each time)')
    .action(async (kind: string, opts: Options) => {
      const userKind = isUserTestEventKind(kind);
      if (kind !== 'failed' && kind !== 'aborted' && kind !== 'success' && !userKind) {
        fail(`kind must be failed, aborted or success, or session-start, session-stop, connection-open or connection-close; got ${JSON.stringify(kind)}`);
      }
      const port = opts.port ?? (userKind ? '9997' : '9998');
      if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) fail(`--port must be an integer 1-65535, got ${JSON.stringify(port)}`);
      for (const [name, value] of [['--task-id', opts.taskId], ['--app-id', opts.appId], ['--execution-id', opts.executionId]] as const) {
        if (value !== undefined && !isGuid(value)) fail(`${name} must be a GUID (8-4-4-4-12 hex digits), got ${JSON.stringify(value)}`);
      }
      for (const [name, value] of [['--task-name', opts.taskName], ['--app-name', opts.appName], ['--user-directory', opts.userDirectory], ['--user-id', opts.userId]] as const) {
        if (/[;\r\n]/.test(value)) fail(`${name} must not contain ";" or line breaks`);
      }
      const text = userKind
        ? userTestEventDatagram(kind, { hostName: os.hostname(), userDirectory: opts.userDirectory, userId: opts.userId })
        : testEventDatagram({
            kind: kind as TestEventKind,
            hostName: os.hostname(),
            taskName: opts.taskName,
            appName: opts.appName,
            taskId: opts.taskId ?? randomUUID(),
            appId: opts.appId ?? randomUUID(),
            executionId: opts.executionId ?? randomUUID(),
            timestamp: log4netDate(new Date()),
          });
      const socket = dgram.createSocket(net.isIPv6(opts.host) ? 'udp6' : 'udp4');
      try {
        await new Promise<void>((resolve, reject) => socket.send(Buffer.from(text, 'utf8'), Number(port), opts.host, (err) => (err ? reject(err) : resolve())));
      } catch (err) {
        fail(`could not send to ${opts.host}:${port}: ${(err as Error).message}`);
      } finally {
        socket.close();
      }
      process.stdout.write(`sent to ${opts.host}:${port} (UDP):\n${text}\n`);
    });
}
