// UDP helpers for tests: a free port for a config file, and senders of real datagrams over loopback.
import dgram from 'node:dgram';
import net from 'node:net';

/** A UDP port on 127.0.0.1 that was free a moment ago. */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
  });
  const port = socket.address().port;
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** Sends one datagram (text as UTF-8, or raw bytes) to host:port (default 127.0.0.1; IPv6 from an IPv6 socket). */
export async function sendDatagram(port: number, data: string | Buffer, host = '127.0.0.1'): Promise<void> {
  await sendDatagrams(port, [data], host);
}

/** Sends datagrams one after another from one socket, as fast as it goes. */
export async function sendDatagrams(port: number, data: (string | Buffer)[], host = '127.0.0.1'): Promise<void> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  try {
    for (const d of data) {
      await new Promise<void>((resolve, reject) => socket.send(typeof d === 'string' ? Buffer.from(d, 'utf8') : d, port, host, (err) => (err ? reject(err) : resolve())));
    }
  } finally {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
}

export interface SchedulerDatagramFields {
  type?: string;
  host?: string;
  taskName?: string;
  appName?: string;
  user?: string;
  taskId?: string;
  appId?: string;
  logTimeStamp?: string;
  logLevel?: string;
  executionId?: string;
  message?: string;
}

/** A scheduler log-appender datagram: type;host;taskName;appName;user;taskId;appId;timestamp;level;executionId;message. */
export function schedulerDatagram(f: SchedulerDatagramFields): string {
  return [
    f.type ?? '/scheduler-reload-failed/',
    f.host ?? 'sense-sched-1',
    f.taskName ?? 'Nightly finance reload',
    f.appName ?? 'Finance dashboard',
    f.user ?? 'CORP\\\\anna',
    f.taskId ?? '',
    f.appId ?? '',
    f.logTimeStamp ?? '2026-11-20 02:03:12,345',
    f.logLevel ?? 'ERROR',
    f.executionId ?? '',
    f.message ?? 'Max retries reached',
  ].join(';');
}
