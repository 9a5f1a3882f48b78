// `butler-mqtt send-test-event`: sends one datagram shaped like the Sense scheduler's log appender
// output, so the whole path (UDP, QRS enrichment, MQTT) can be tried without waiting for a reload
// to fail. A new executionId each time unless one is given, so deduplication does not hide it.
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
  port: string;
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
    .description('send one Sense scheduler datagram (reload failed, aborted or succeeded) to butler-mqtt over UDP')
    .argument('<kind>', 'failed, aborted or success')
    .option('--host <host>', 'butler-mqtt host', '127.0.0.1')
    .option('--port <port>', 'butler-mqtt UDP port (udpServerConfig.portTaskFailure)', '9998')
    .option('--task-id <guid>', 'reload task id (a real one, for QRS enrichment; default: a random GUID)')
    .option('--app-id <guid>', 'app id (default: a random GUID)')
    .option('--task-name <name>', 'task name', 'butler-mqtt test task')
    .option('--app-name <name>', 'app name', 'butler-mqtt test app')
    .option('--execution-id <guid>', 'execution id (default: a new random GUID each time)')
    .action(async (kind: string, opts: Options) => {
      if (kind !== 'failed' && kind !== 'aborted' && kind !== 'success') fail(`kind must be failed, aborted or success, got ${JSON.stringify(kind)}`);
      if (!/^\d+$/.test(opts.port) || Number(opts.port) < 1 || Number(opts.port) > 65535) fail(`--port must be an integer 1-65535, got ${JSON.stringify(opts.port)}`);
      for (const [name, value] of [['--task-id', opts.taskId], ['--app-id', opts.appId], ['--execution-id', opts.executionId]] as const) {
        if (value !== undefined && !isGuid(value)) fail(`${name} must be a GUID (8-4-4-4-12 hex digits), got ${JSON.stringify(value)}`);
      }
      for (const [name, value] of [['--task-name', opts.taskName], ['--app-name', opts.appName]] as const) {
        if (/[;\r\n]/.test(value)) fail(`${name} must not contain ";" or line breaks`);
      }
      const text = testEventDatagram({
        kind,
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
        await new Promise<void>((resolve, reject) => socket.send(Buffer.from(text, 'utf8'), Number(opts.port), opts.host, (err) => (err ? reject(err) : resolve())));
      } catch (err) {
        fail(`could not send to ${opts.host}:${opts.port}: ${(err as Error).message}`);
      } finally {
        socket.close();
      }
      process.stdout.write(`sent to ${opts.host}:${opts.port} (UDP):\n${text}\n`);
    });
}
