// The connection to an MQTT broker: client options for a plain broker, username/password, TLS with
// client certificates and Azure Event Grid; reconnects with exponential backoff and full jitter; logs
// each refusal once per attempt with the next delay instead of crash-looping.
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import type { Writable } from 'node:stream';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';

export interface BrokerConnectionOptions {
  /** Label for logs and metrics (e.g. "main", "cloud"). */
  name: string;
  protocol: 'mqtt' | 'mqtts';
  host: string;
  port: number;
  clientId: string;
  username?: string;
  password?: string;
  /** PEM contents, read at start-up. */
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  protocolVersion: 4 | 5;
  keepaliveSeconds: number;
  clean: boolean;
  will?: { topic: string; payload: string; qos: 0 | 1 | 2; retain: boolean };
  minDelayMs: number;
  maxDelayMs: number;
  connectTimeoutMs?: number;
}

/** Delay before reconnect attempt `attempt` (1-based): full jitter over an exponential ceiling. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(minMs + random() * Math.max(0, ceiling - minMs));
}

export function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the ${what} ${JSON.stringify(file)}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export declare interface BrokerConnection {
  on(event: 'connect', listener: () => void): this;
  on(event: 'disconnect', listener: () => void): this;
}

export class BrokerConnection extends EventEmitter {
  readonly client: MqttClient;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private lastErrorText = '';
  private connectedSince: number | null = null;
  /** An error event explained the current attempt's failure (so a bare close needs no extra line). */
  private attemptFailedVisibly = false;

  constructor(
    readonly options: BrokerConnectionOptions,
    private readonly deps: { logger: Logger; metrics?: Metrics },
  ) {
    super();
    const o = options;
    const clientOptions: IClientOptions = {
      protocol: o.protocol,
      host: o.host,
      port: o.port,
      clientId: o.clientId,
      username: o.username || undefined,
      password: o.password || undefined,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      rejectUnauthorized: o.rejectUnauthorized,
      protocolVersion: o.protocolVersion,
      keepalive: o.keepaliveSeconds,
      // A PINGREQ every keepalive period even while packets flow, instead of restarting the keepalive
      // timer on every packet sent and received (about 2% of the bridge's time in a storm).
      reschedulePings: false,
      clean: o.clean,
      // Backoff is ours (exponential with jitter); MQTT.js only knows a fixed period.
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      manualConnect: true,
      // In-flight QoS 1/2 packets are resent by the client after a reconnect; QoS 0 is not queued offline
      // (the outbox is the queue).
      queueQoSZero: false,
      // MQTT.js traces every packet through the debug module; checking whether that trace is enabled
      // cost about 3% of the bridge's time in a storm (bench/storm.ts). Without DEBUG set, the trace
      // goes nowhere; with DEBUG=mqttjs* it works as usual.
      log: process.env['DEBUG'] ? undefined : noTrace,
      will: o.will ? { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: o.will.qos, retain: o.will.retain } : undefined,
    };
    this.client = mqtt.connect(clientOptions);
    this.client.on('connect', () => {
      // MQTT.js leaves Nagle's algorithm on. With the subscription root covering our own topics, the
      // socket carries PUBACKs and PUBLISHes both ways, and Nagle holding a small segment until the
      // broker's delayed ACK added 20–40 ms to every alert (measured: bench/latency.ts).
      (this.client.stream as { setNoDelay?: (noDelay: boolean) => unknown } | undefined)?.setNoDelay?.(true);
      if (this.client.stream) coalesceWrites(this.client.stream);
      this.attempt = 0;
      this.lastErrorText = '';
      this.connectedSince = Date.now();
      this.deps.metrics?.brokerConnected.set({ broker: o.name }, 1);
      this.deps.logger.info({ broker: o.name, host: o.host, port: o.port, clientId: o.clientId }, `connected to MQTT broker ${o.host}:${o.port}`);
      this.emit('connect');
    });
    this.client.on('error', (err) => {
      // While we disconnect, the broker may still deliver a QoS 1 message (under the subscription root,
      // e.g. our own offline status); MQTT.js then tries to acknowledge it on the ended socket.
      if (this.stopping && (err as NodeJS.ErrnoException).code === 'ERR_STREAM_WRITE_AFTER_END') {
        this.deps.logger.debug({ broker: o.name }, `MQTT broker ${o.host}:${o.port}: a message arrived while disconnecting and was not acknowledged (with a persistent session, clean: false, the broker sends it again on the next connect)`);
        return;
      }
      this.attemptFailedVisibly = true;
      this.reportRefusal(describeMqttError(err));
    });
    this.client.on('close', () => {
      const wasConnected = this.connectedSince !== null;
      this.connectedSince = null;
      this.deps.metrics?.brokerConnected.set({ broker: o.name }, 0);
      if (wasConnected) {
        this.deps.logger[this.stopping ? 'info' : 'warn']({ broker: o.name }, `disconnected from MQTT broker ${o.host}:${o.port}`);
        this.emit('disconnect');
      } else if (!this.attemptFailedVisibly && !this.stopping) {
        // A TLS server that rejects the client certificate may just close the socket: no error event.
        this.reportRefusal('the broker closed the connection before accepting it (for a TLS broker: client certificate missing or not accepted?)');
      }
      this.attemptFailedVisibly = false;
      this.scheduleReconnect();
    });
  }

  /** Logs a refusal once per distinct reason (not on every reconnect attempt). */
  private reportRefusal(text: string): void {
    if (text === this.lastErrorText) return;
    const o = this.options;
    this.deps.logger.warn({ broker: o.name, host: o.host, port: o.port, err: text }, `MQTT broker ${o.host}:${o.port}: ${text}`);
    this.lastErrorText = text;
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /** Starts connecting; resolves at once (the connection may come later, the outbox waits). */
  start(): void {
    this.stopping = false;
    this.deps.logger.debug({ broker: this.options.name }, `connecting to MQTT broker ${this.options.protocol}://${this.options.host}:${this.options.port} as ${this.options.clientId}`);
    this.client.connect();
  }

  /** Resolves on the first successful connect, or rejects after timeoutMs. */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.off('connect', on);
        reject(new Error(`not connected to ${this.options.host}:${this.options.port} within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = () => {
        clearTimeout(t);
        resolve();
      };
      this.once('connect', on);
    });
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.reconnectTimer) return;
    this.attempt += 1;
    const delay = backoffDelay(this.attempt, this.options.minDelayMs, this.options.maxDelayMs);
    this.deps.metrics?.brokerReconnects.inc({ broker: this.options.name });
    const level = this.attempt === 1 || this.attempt % 10 === 0 ? 'info' : 'debug';
    this.deps.logger[level]({ broker: this.options.name, attempt: this.attempt, delayMs: delay }, `reconnecting to MQTT broker ${this.options.host}:${this.options.port} in ${delay} ms (attempt ${this.attempt})`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.stopping) return;
      this.client.reconnect();
    }, delay);
  }

  /** Disconnects; with force=false waits for the DISCONNECT to be written. */
  async stop(force = false): Promise<void> {
    this.stopping = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => resolve(), 2000);
      this.client.end(force, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.deps.metrics?.brokerConnected.set({ broker: this.options.name }, 0);
  }
}

function describeMqttError(err: Error & { code?: string | number }): string {
  const code = err.code;
  if (code === 'ECONNREFUSED') return 'connection refused (is the broker running and the port right?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name not found';
  if (code === 'ECONNRESET') return 'connection reset by the broker (for a TLS broker: client certificate missing or not accepted?)';
  if (code === 'ETIMEDOUT') return 'connection timed out';
  if (typeof code === 'number') {
    // CONNACK return codes (3.1.1) / reason codes (5)
    const reasons: Record<number, string> = {
      1: 'broker refused the connection: unacceptable protocol version',
      2: 'broker refused the connection: client id rejected',
      3: 'broker refused the connection: server unavailable',
      4: 'broker refused the connection: bad user name or password',
      5: 'broker refused the connection: not authorised',
      134: 'broker refused the connection: bad user name or password',
      135: 'broker refused the connection: not authorised',
      133: 'broker refused the connection: client id not valid',
    };
    if (reasons[code]) return reasons[code] as string;
  }
  return err.message;
}

const noTrace = (): void => undefined;

const COALESCED = Symbol('butler-mqtt.coalesced');

/**
 * Holds what is written to the broker socket during one turn of the event loop and sends it in one
 * system call. MQTT.js writes each packet on its own (cork until the next tick), so a turn that
 * publishes a window of messages and acknowledges the messages it received made one writev per
 * packet: about a seventh of the bridge's CPU time in a storm (bench/storm.ts, CPU profile). The
 * hold ends in the check phase (setImmediate) of the same turn, so nothing waits for a timer.
 */
export function coalesceWrites(stream: Writable): void {
  const s = stream as Writable & { [COALESCED]?: true };
  if (s[COALESCED]) return;
  s[COALESCED] = true;
  const write = s.write;
  let held = false;
  // Writable.end() sends what is corked first, so nothing held is lost at a disconnect.
  const release = () => {
    held = false;
    if (!s.destroyed && s.writableCorked > 0) s.uncork();
  };
  s.write = function (this: Writable, ...args: unknown[]): boolean {
    if (!held && !s.destroyed && !s.writableEnded) {
      held = true;
      s.cork();
      setImmediate(release);
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Writable['write'];
}
