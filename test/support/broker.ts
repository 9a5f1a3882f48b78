// A real MQTT broker for tests on a free loopback port: Mosquitto from Debian when installed, an
// in-process Aedes broker otherwise (or when TEST_BROKER=aedes). Plain or TLS (optionally requiring
// a client certificate). Stopped, killed and restarted on the same port by the tests.
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { Aedes } from 'aedes';
import { freePort, waitForPort, waitFor } from './wait.ts';

export interface BrokerTlsOptions {
  caCert: string;
  serverCert: string;
  serverKey: string;
  requireCertificate: boolean;
  /**
   * The certificate CN becomes the user name and only `allowedIdentity` may publish or subscribe (an
   * ACL in Mosquitto, authorize hooks in Aedes). A certificate of another CA, or none, fails the TLS
   * handshake; a certificate of the right CA with another identity connects but gets no topic access
   * (neither broker can refuse the CONNECT itself by identity, as Azure Event Grid does).
   */
  identityAsUsername?: boolean;
  allowedIdentity?: string;
}

export interface BrokerOptions {
  tls?: BrokerTlsOptions;
  /** Force Aedes even when Mosquitto is installed. */
  kind?: 'mosquitto' | 'aedes';
  /** Require username/password (Mosquitto: a password file generated at run time; Aedes: an authenticate hook). */
  users?: { username: string; password: string }[];
  /**
   * Keep sessions across a kill/restart (persistent subscribers keep their subscription and queue).
   * Mosquitto: persistence on disk saved every second; Aedes: the broker instance outlives the listener.
   */
  persistence?: boolean;
  /** A port chosen earlier (e.g. already in a bridge config); default: a free one. */
  port?: number;
}

export interface TestBroker {
  kind: 'mosquitto' | 'aedes';
  port: number;
  url: string;
  /** Graceful stop. */
  stop(): Promise<void>;
  /** Abrupt stop (SIGKILL for Mosquitto; sockets destroyed for Aedes). */
  kill(): Promise<void>;
  /** Start again on the same port after stop/kill. */
  restart(): Promise<void>;
  /**
   * Resolves once a kill can no longer take `clientId`'s persistent session with these subscriptions:
   * Mosquitto has written them to its persistence file (its autosave runs when a whole second or two
   * has passed, later on a busy machine); Aedes keeps sessions in the broker instance, so at once.
   */
  sessionSaved(clientId: string, filters: string[], timeoutMs?: number): Promise<void>;
  readonly running: boolean;
}

export function mosquittoPath(): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(p)) return p;
  return null;
}

export function brokerKind(): 'mosquitto' | 'aedes' {
  if (process.env.TEST_BROKER === 'aedes') return 'aedes';
  return mosquittoPath() ? 'mosquitto' : 'aedes';
}

export async function startBroker(options: BrokerOptions = {}): Promise<TestBroker> {
  const kind = options.kind ?? brokerKind();
  const port = options.port ?? (await freePort());
  return kind === 'mosquitto' ? startMosquitto(port, options) : startAedes(port, options);
}

async function startMosquitto(port: number, options: BrokerOptions): Promise<TestBroker> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bm-mosq-'));
  const lines = [
    `listener ${port} 127.0.0.1`,
    ...(options.persistence ? ['persistence true', `persistence_location ${dir}/`, 'autosave_interval 1'] : ['persistence false']),
    // Tests run as root; Mosquitto would otherwise drop to a user that cannot read the generated files.
    'user root',
    // The default (1000) drops QoS 1 messages to a slow subscriber; tests count every message.
    'max_queued_messages 1000000',
    'max_inflight_messages 0',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ];
  if (options.users && options.users.length > 0) {
    const pw = path.join(dir, 'passwd');
    writeFileSync(pw, '');
    for (const u of options.users) execFileSync('mosquitto_passwd', ['-b', pw, u.username, u.password]);
    lines.push('allow_anonymous false', `password_file ${pw}`);
  } else if (!options.tls?.identityAsUsername) {
    lines.push('allow_anonymous true');
  }
  if (options.tls) {
    const t = options.tls;
    lines.push(`cafile ${t.caCert}`, `certfile ${t.serverCert}`, `keyfile ${t.serverKey}`, `require_certificate ${t.requireCertificate}`);
    if (t.identityAsUsername) {
      lines.push('use_identity_as_username true');
      const acl = path.join(dir, 'acl');
      writeFileSync(acl, `user ${t.allowedIdentity ?? ''}\ntopic readwrite #\n`);
      lines.push(`acl_file ${acl}`, 'allow_anonymous false');
    }
  }
  const conf = path.join(dir, 'mosquitto.conf');
  writeFileSync(conf, lines.join('\n') + '\n');
  let child: ChildProcess | null = null;
  let stderr = '';
  const launch = async () => {
    stderr = '';
    const c = spawn(mosquittoPath() as string, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child = c;
    // If the test process ends without stopping the broker (a failed or aborted test), take it along.
    const reap = () => c.kill('SIGKILL');
    process.once('exit', reap);
    c.once('exit', () => process.off('exit', reap));
    const exited = new Promise<never>((_, reject) => c.once('exit', (code) => reject(new Error(`mosquitto exited (${code}): ${stderr}`))));
    await Promise.race([waitForPort(port, 10_000), exited]);
    exited.catch(() => undefined);
  };
  const terminate = async (signal: NodeJS.Signals) => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    const done = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    await done;
  };
  await launch();
  return {
    kind: 'mosquitto',
    port,
    url: `${options.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    get running() {
      return child !== null;
    },
    // Graceful: Mosquitto saves its persistence file on SIGTERM. The temp dir stays for a restart.
    stop: () => terminate('SIGTERM'),
    kill: () => terminate('SIGKILL'),
    restart: launch,
    sessionSaved: async (clientId, filters, timeoutMs = 15_000) => {
      if (!options.persistence) throw new Error('sessionSaved needs a broker started with persistence: true');
      // The file is replaced whole (written beside it, then renamed), so a read sees one complete save.
      // Client id and each filter are stored as plain strings in the session's chunks.
      const file = path.join(dir, 'mosquitto.db');
      const wanted = [clientId, ...filters].map((s) => Buffer.from(s, 'utf8'));
      await waitFor(() => {
        if (!existsSync(file)) return false;
        const saved = readFileSync(file);
        return wanted.every((w) => saved.includes(w));
      }, timeoutMs, `Mosquitto to save the session of ${clientId}`);
    },
  };
}

async function startAedes(port: number, options: BrokerOptions): Promise<TestBroker> {
  let broker: Aedes | null = null;
  let server: net.Server | null = null;
  const sockets = new Set<net.Socket>();
  const launch = async () => {
    const users = options.users;
    const b =
      broker ??
      (await Aedes.createBroker(
        users && users.length > 0
          ? {
              authenticate: (_client, username, password, done) => {
                const ok = users.some((u) => u.username === username && u.password === password?.toString());
                if (ok) done(null, true);
                else done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
              },
            }
          : {},
      ));
    if (!broker && options.tls?.identityAsUsername) restrictToIdentity(b, options.tls.allowedIdentity);
    broker = b;
    const onSocket = (socket: net.Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      b.handle(socket);
    };
    if (options.tls) {
      const t = options.tls;
      server = tls.createServer(
        { ca: readFileSync(t.caCert), cert: readFileSync(t.serverCert), key: readFileSync(t.serverKey), requestCert: t.requireCertificate, rejectUnauthorized: t.requireCertificate },
        onSocket,
      );
    } else {
      server = net.createServer(onSocket);
    }
    const srv = server;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => resolve());
    });
  };
  const closeListener = async () => {
    const srv = server;
    server = null;
    for (const s of sockets) s.destroy();
    sockets.clear();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  };
  const shutdown = async () => {
    await closeListener();
    const b = broker;
    broker = null;
    if (b) await new Promise<void>((r) => b.close(() => r()));
  };
  await launch();
  return {
    kind: 'aedes',
    port,
    url: `${options.tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    get running() {
      return server !== null;
    },
    stop: shutdown,
    kill: options.persistence ? closeListener : shutdown,
    restart: async () => {
      await waitFor(() => server === null, 1000, 'aedes to stop');
      await launch();
    },
    sessionSaved: async () => {
      if (!options.persistence) throw new Error('sessionSaved needs a broker started with persistence: true');
    },
  };
}

/** Aedes counterpart of Mosquitto's use_identity_as_username + ACL: only `allowed` (certificate CN) may publish or subscribe. */
function restrictToIdentity(broker: Aedes, allowed: string | undefined): void {
  const denied = (client: { conn: unknown } | null): boolean => {
    if (!client) return false; // the broker's own publications (wills are published with their client)
    const conn = client.conn as tls.TLSSocket;
    const cn = typeof conn.getPeerCertificate === 'function' ? conn.getPeerCertificate()?.subject?.CN : undefined;
    return (Array.isArray(cn) ? cn[0] : cn) !== allowed;
  };
  broker.authorizePublish = (client, _packet, callback) => callback(denied(client) ? new Error('not authorised for this identity') : null);
  broker.authorizeSubscribe = (client, sub, callback) => callback(null, denied(client) ? null : sub);
}
