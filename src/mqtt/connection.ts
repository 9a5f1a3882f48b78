// The connection to an MQTT broker: client options for a plain broker, username/password, TLS with
// client certificates and Azure Event Grid; reconnects with exponential backoff and full jitter; logs
// each refusal once per attempt with the next delay instead of crash-looping. It owns the MQTT.js
// client: subscriptions are made through it (and made again on every connect), incoming messages are
// routed to the handlers whose filter matches, and only the Publisher (src/mqtt/publisher.ts) sends
// PUBLISH packets, through publishRaw().
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { Readable, type Writable } from 'node:stream';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient, type Packet } from 'mqtt';
import type { QoS } from '../store/types.ts';
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

/** One value for where the connection is; `connected` means the session is usable (stored packets resent). */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnect-wait' | 'stopping' | 'stopped';

export type MessageHandler = (topic: string, payload: Buffer, packet: IPublishPacket) => void;

export interface SubscribeOptions {
  qos: QoS;
  /** Words after the filter in log lines, e.g. "for task start commands on qliksense/start_task". */
  purpose?: string;
}

/** A subscription made through the connection; pass it to unsubscribe(). */
export interface Subscription {
  readonly filter: string;
  readonly qos: QoS;
  /** Result of the latest SUBACK: pending until the first one, then granted or refused. */
  readonly status: 'pending' | 'granted' | 'refused';
  /** Resolves with the granted QoS at the next grant (at once when granted already); rejects when refused or after timeoutMs. */
  whenGranted(timeoutMs: number): Promise<number>;
}

/** Why a socket closed, for the Publisher's dead-letter rule (see publisher.ts). */
export interface CloseInfo {
  /** When the broker accepted this socket (CONNACK success), or null: the attempt failed. */
  acceptedAt: number | null;
  closedAt: number;
  /**
   * The socket was accepted but closed while MQTT.js was sending again, one at a time and each
   * waiting for its acknowledgement, what was unacknowledged: the message it was sending. Else null.
   */
  resending: { topic: string; payload: string | Buffer } | null;
}

export declare interface BrokerConnection {
  /** The session is usable: what MQTT.js had in flight has been sent again, subscriptions are being made. */
  on(event: 'connect', listener: () => void): this;
  /** A usable session ended. */
  on(event: 'disconnect', listener: () => void): this;
  /** The broker accepted a socket (CONNACK success), before MQTT.js sends what it had in flight. */
  on(event: 'accepted', listener: () => void): this;
  /** Any socket closed, accepted or not. */
  on(event: 'closed', listener: (info: CloseInfo) => void): this;
}

interface SubscriptionEntry extends Subscription {
  /** The filter messages are matched against: `$share/<group>/` removed. */
  readonly match: string;
  readonly handler: MessageHandler;
  readonly purpose: string;
  status: 'pending' | 'granted' | 'refused';
  grantedQos: number | null;
  waiters: { resolve: (qos: number) => void; reject: (err: Error) => void }[];
}

export class BrokerConnection extends EventEmitter {
  /** Private: only this file and, through publishRaw(), the Publisher talk to the broker. */
  readonly #client: MqttClient;
  /** Packets MQTT.js has sent and not seen acknowledged (its outgoing store, ours so one can be dropped). */
  readonly #inFlight = new InFlightStore();
  #state: ConnectionState = 'idle';
  /** When the broker accepted the current socket (null while not accepted). */
  #acceptedAt: number | null = null;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private lastErrorText = '';
  /** An error event explained the current attempt's failure (so a bare close needs no extra line). */
  private attemptFailedVisibly = false;
  private readonly subscriptions: SubscriptionEntry[] = [];

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
      // Subscriptions are made again by this class on every connect, with their handlers.
      resubscribe: false,
      outgoingStore: this.#inFlight as unknown as IClientOptions['outgoingStore'],
      // In-flight QoS 1/2 packets are resent by the client after a reconnect; QoS 0 is not queued offline
      // (the outbox is the queue).
      queueQoSZero: false,
      // MQTT.js traces every packet through the debug module; checking whether that trace is enabled
      // cost about 3% of the bridge's time in a storm (bench/storm.ts). Without DEBUG set, the trace
      // goes nowhere; with DEBUG=mqttjs* it works as usual.
      log: process.env['DEBUG'] ? undefined : noTrace,
      // MQTT.js otherwise builds, at the first packet, 65,536 two-byte Buffers for the packet ids (about
      // 7 MB of heap for the process's lifetime) to save a two-byte allocation per packet.
      writeCache: false,
      will: o.will ? { topic: o.will.topic, payload: Buffer.from(o.will.payload), qos: o.will.qos, retain: o.will.retain } : undefined,
    };
    const client = mqtt.connect(clientOptions);
    this.#client = client;
    client.on('connect', () => {
      if (this.#state === 'stopping' || this.#state === 'stopped') {
        // A CONNACK for a connection stop() has ended: close the socket instead of becoming
        // connected (and reconnecting after it) while stopped.
        client.stream?.destroy();
        return;
      }
      // MQTT.js leaves Nagle's algorithm on. With the subscription root covering our own topics, the
      // socket carries PUBACKs and PUBLISHes both ways, and Nagle holding a small segment until the
      // broker's delayed ACK added 20–40 ms to every alert (measured: bench/latency.ts).
      (client.stream as { setNoDelay?: (noDelay: boolean) => unknown } | undefined)?.setNoDelay?.(true);
      if (client.stream) coalesceWrites(client.stream);
      this.attempt = 0;
      this.lastErrorText = '';
      this.#state = 'connected';
      this.deps.metrics?.brokerConnected.set({ broker: o.name }, 1);
      this.deps.logger.info({ broker: o.name, host: o.host, port: o.port, clientId: o.clientId }, `connected to MQTT broker ${o.host}:${o.port}`);
      for (const s of this.subscriptions) this.sendSubscribe(s);
      this.emit('connect');
    });
    client.on('message', (topic, payload, packet) => this.route(topic, payload, packet));
    client.on('error', (err) => {
      // While we disconnect, the broker may still deliver a QoS 1 message (under the subscription root,
      // e.g. our own offline status); MQTT.js then tries to acknowledge it on the ended socket.
      if (this.#state === 'stopping' && (err as NodeJS.ErrnoException).code === 'ERR_STREAM_WRITE_AFTER_END') {
        this.deps.logger.debug({ broker: o.name }, `MQTT broker ${o.host}:${o.port}: a message arrived while disconnecting and was not acknowledged (with a persistent session, clean: false, the broker sends it again on the next connect)`);
        return;
      }
      this.attemptFailedVisibly = true;
      this.reportRefusal(describeMqttError(err));
    });
    client.on('close', () => {
      const wasConnected = this.#state === 'connected';
      const stopping = this.#state === 'stopping' || this.#state === 'stopped';
      const resending = !wasConnected && this.#acceptedAt !== null ? this.#inFlight.first() : null;
      const info: CloseInfo = { acceptedAt: this.#acceptedAt, closedAt: Date.now(), resending };
      this.#acceptedAt = null;
      this.deps.metrics?.brokerConnected.set({ broker: o.name }, 0);
      if (!stopping) this.#state = 'reconnect-wait';
      if (wasConnected) {
        this.deps.logger[stopping ? 'info' : 'warn']({ broker: o.name }, `disconnected from MQTT broker ${o.host}:${o.port}`);
        this.emit('disconnect');
      } else if (info.acceptedAt !== null && !stopping) {
        this.reportRefusal('the broker accepted the connection, then closed it while the client sent again what was unacknowledged');
      } else if (!this.attemptFailedVisibly && !stopping) {
        // A TLS server that rejects the client certificate may just close the socket: no error event.
        this.reportRefusal('the broker closed the connection before accepting it (for a TLS broker: client certificate missing or not accepted?)');
      }
      this.attemptFailedVisibly = false;
      this.emit('closed', info);
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

  get state(): ConnectionState {
    return this.#state;
  }

  get connected(): boolean {
    return this.#state === 'connected';
  }

  /** The MQTT protocol version the client speaks (4 = 3.1.1, 5). */
  get protocolVersion(): number {
    return this.#client.options.protocolVersion ?? 4;
  }

  /** Starts connecting; resolves at once (the connection may come later, the outbox waits). */
  start(): void {
    if (this.#state !== 'idle' && this.#state !== 'stopped') return;
    this.#state = 'connecting';
    this.deps.logger.debug({ broker: this.options.name }, `connecting to MQTT broker ${this.options.protocol}://${this.options.host}:${this.options.port} as ${this.options.clientId}`);
    this.watchForAcceptance();
    this.#client.connect();
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

  /**
   * Subscribes now if connected and again on every connect (the broker forgets the subscriptions of a
   * clean session), and hands every incoming message whose topic matches `filter` to `handler`. A
   * shared subscription (`$share/<group>/<filter>`) is matched by its inner filter.
   */
  subscribe(filter: string, options: SubscribeOptions, handler: MessageHandler): Subscription {
    const entry: SubscriptionEntry = {
      filter,
      qos: options.qos,
      match: innerFilter(filter),
      handler,
      purpose: options.purpose ?? '',
      status: 'pending',
      grantedQos: null,
      waiters: [],
      whenGranted: (timeoutMs: number) => this.whenGranted(entry, timeoutMs),
    };
    this.subscriptions.push(entry);
    if (this.connected) this.sendSubscribe(entry);
    return entry;
  }

  /** Stops routing to the subscription's handler; unsubscribes from the broker when no other subscription has the same filter. */
  unsubscribe(subscription: Subscription): void {
    const i = this.subscriptions.indexOf(subscription as SubscriptionEntry);
    if (i < 0) return;
    const [entry] = this.subscriptions.splice(i, 1) as [SubscriptionEntry];
    for (const w of entry.waiters.splice(0)) w.reject(new Error(`unsubscribed from ${entry.filter}`));
    if (this.connected && !this.subscriptions.some((s) => s.filter === entry.filter)) {
      this.#client.unsubscribe(entry.filter, (err) => {
        if (err) this.deps.logger.debug({ broker: this.options.name, topic: entry.filter, err: err.message }, `could not unsubscribe from ${entry.filter}`);
      });
    }
  }

  /**
   * Hands an incoming message to every handler whose filter matches. Called for each PUBLISH the
   * broker sends; public so a test can hand over a packet as a broker would send it (e.g. a redelivery).
   */
  route(topic: string, payload: Buffer, packet: IPublishPacket): void {
    for (const s of this.subscriptions) {
      if (!topicMatches(s.match, topic)) continue;
      try {
        s.handler(topic, payload, packet);
      } catch (err) {
        this.deps.logger.error({ broker: this.options.name, topic, err: (err as Error).message }, `message handler for ${s.filter} failed: ${(err as Error).message}`);
      }
    }
  }

  private sendSubscribe(entry: SubscriptionEntry): void {
    const { logger } = this.deps;
    const name = this.options.name;
    const purpose = entry.purpose ? ` ${entry.purpose}` : '';
    this.#client.subscribe(entry.filter, { qos: entry.qos }, (err, granted) => {
      if (!this.subscriptions.includes(entry)) return;
      // On a refusal MQTT.js passes an error carrying the SUBACK packet (one code, one filter per SUBSCRIBE).
      const subackCode = (err as { packet?: { granted?: unknown[] } } | null)?.packet?.granted?.[0];
      const code = err ? (typeof subackCode === 'number' ? subackCode : undefined) : (granted?.find((g) => g.topic === entry.filter)?.qos ?? granted?.[0]?.qos);
      if (code !== undefined && code >= 0x80) {
        // Once per refusal, not on every reconnect while it lasts.
        if (entry.status !== 'refused') {
          logger.warn({ broker: name, topic: entry.filter, reasonCode: code }, `could not subscribe to ${entry.filter}${purpose}: refused by the broker (reason code 0x${code.toString(16)})`);
        }
        entry.status = 'refused';
        for (const w of entry.waiters.splice(0)) w.reject(new Error(`subscription to ${entry.filter} refused by the broker (reason code 0x${code.toString(16)})`));
        return;
      }
      if (err || code === undefined) {
        // The connection closed before the SUBACK: subscribed again at the next connect.
        logger.debug({ broker: name, topic: entry.filter, err: err?.message }, `subscription to ${entry.filter} not confirmed: ${err?.message ?? 'no SUBACK'}; made again at the next connect`);
        return;
      }
      if (entry.status !== 'granted') logger.info({ broker: name, topic: entry.filter, qos: code }, `subscribed to ${entry.filter}${purpose}`);
      else logger.debug({ broker: name, topic: entry.filter, qos: code }, `subscribed again to ${entry.filter}${purpose}`);
      entry.status = 'granted';
      entry.grantedQos = code;
      for (const w of entry.waiters.splice(0)) w.resolve(code);
    });
  }

  private whenGranted(entry: SubscriptionEntry, timeoutMs: number): Promise<number> {
    if (entry.status === 'granted' && entry.grantedQos !== null) return Promise.resolve(entry.grantedQos);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`subscription to ${entry.filter} not granted within ${timeoutMs} ms`)), timeoutMs);
      entry.waiters.push({
        resolve: (q) => {
          clearTimeout(t);
          resolve(q);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
    });
  }

  /**
   * For the Publisher only (src/mqtt/publisher.ts): the one way to put a PUBLISH on the wire. Nothing
   * else publishes; a feature hands its messages to the outbox.
   */
  publishRaw(topic: string, payload: string | Buffer, opts: { qos: QoS; retain: boolean }, callback: (err?: Error) => void): void {
    this.#client.publish(topic, payload, opts, callback);
  }

  /**
   * For the Publisher only: forgets a PUBLISH MQTT.js still holds as unacknowledged (the first with
   * this topic and payload), so it is not sent again at the next connect. Its callback is never called.
   * Used for a message moved to the dead-letter table. Returns whether one was found.
   */
  forgetInFlight(topic: string, payload: string | Buffer): boolean {
    const messageId = this.#inFlight.find(topic, payload);
    if (messageId === null) return false;
    this.#inFlight.remove(messageId);
    delete this.#client.outgoing[messageId];
    this.#client.messageIdProvider.deallocate(messageId);
    return true;
  }

  /** Calls `listener` with every packet written to the broker (tests, diagnostics); returns what stops it. */
  observeSentPackets(listener: (packet: Packet) => void): () => void {
    this.#client.on('packetsend', listener);
    return () => this.#client.off('packetsend', listener);
  }

  /** Closes the socket abruptly as a network failure would (fault tests and diagnostics); the connection reconnects. */
  dropSocket(): void {
    this.#client.stream?.destroy();
  }

  /** Listens for the CONNACK of the attempt starting now, then stops listening (nothing per packet afterwards). */
  private watchForAcceptance(): void {
    const client = this.#client;
    const onPacket = (packet: { cmd: string; returnCode?: number; reasonCode?: number }) => {
      if (packet.cmd !== 'connack') return;
      client.off('packetreceive', onPacket);
      client.off('close', onClose);
      const rc = packet.reasonCode ?? packet.returnCode ?? 0;
      if (rc !== 0) return;
      this.#acceptedAt = Date.now();
      this.emit('accepted');
    };
    const onClose = () => {
      client.off('packetreceive', onPacket);
      client.off('close', onClose);
    };
    client.on('packetreceive', onPacket);
    client.on('close', onClose);
  }

  private scheduleReconnect(): void {
    if (this.#state === 'stopping' || this.#state === 'stopped' || this.reconnectTimer) return;
    this.#state = 'reconnect-wait';
    this.attempt += 1;
    const delay = backoffDelay(this.attempt, this.options.minDelayMs, this.options.maxDelayMs);
    this.deps.metrics?.brokerReconnects.inc({ broker: this.options.name });
    const level = this.attempt === 1 || this.attempt % 10 === 0 ? 'info' : 'debug';
    this.deps.logger[level]({ broker: this.options.name, attempt: this.attempt, delayMs: delay }, `reconnecting to MQTT broker ${this.options.host}:${this.options.port} in ${delay} ms (attempt ${this.attempt})`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.#state !== 'reconnect-wait') return;
      this.#state = 'connecting';
      this.watchForAcceptance();
      // The same stores: MQTT.js sends again what was unacknowledged as soon as the broker accepts
      // (without them it would start with empty ones and forget those packets).
      this.#client.reconnect({ incomingStore: this.#client.incomingStore, outgoingStore: this.#inFlight as unknown as IClientOptions['outgoingStore'] });
    }, delay);
  }

  /** Disconnects; with force=false waits for the DISCONNECT to be written. */
  async stop(force = false): Promise<void> {
    if (this.#state === 'stopped') return;
    // Before the broker accepted the socket there is no session to say goodbye to: MQTT.js would
    // queue the DISCONNECT until a CONNACK, and that late CONNACK would connect a stopped client.
    const accepted = this.#state === 'connected' || this.#acceptedAt !== null;
    this.#state = 'stopping';
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => resolve(), 2000);
      this.#client.end(force || !accepted, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.#state = 'stopped';
    this.deps.metrics?.brokerConnected.set({ broker: this.options.name }, 0);
  }
}

/** The filter a shared subscription delivers by: `$share/<group>/<filter>` → `<filter>`. */
export function innerFilter(filter: string): string {
  if (!filter.startsWith('$share/')) return filter;
  const rest = filter.slice('$share/'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(slash + 1);
}

/**
 * MQTT topic filter matching: `+` is one level, `#` (last) is this level and every one below; a
 * filter starting with a wildcard does not match a topic starting with `$` (MQTT 3.1.1 §4.7.2).
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i] as string;
    if (level === '#') return i === f.length - 1;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * MQTT.js's outgoing store (QoS 1/2 packets sent and not acknowledged, sent again after a reconnect),
 * as MQTT.js's own in-memory store does it, plus find/remove so a message moved to the dead-letter
 * table is not sent again.
 */
class InFlightStore {
  private packets = new Map<number, { topic?: string; payload?: unknown; messageId?: number }>();

  put(packet: { messageId?: number }, cb?: () => void): this {
    this.packets.set(packet.messageId as number, packet);
    cb?.();
    return this;
  }

  createStream(): Readable {
    const values = [...this.packets.values()];
    let i = 0;
    return new Readable({
      objectMode: true,
      read() {
        this.push(i < values.length ? values[i++] : null);
      },
    });
  }

  del(packet: { messageId?: number }, cb?: (err?: Error, packet?: unknown) => void): this {
    const found = this.packets.get(packet.messageId as number);
    if (found) {
      this.packets.delete(packet.messageId as number);
      cb?.(undefined, found);
    } else cb?.(new Error('missing packet'));
    return this;
  }

  get(packet: { messageId?: number }, cb: (err?: Error, packet?: unknown) => void): this {
    const found = this.packets.get(packet.messageId as number);
    if (found) cb(undefined, found);
    else cb(new Error('missing packet'));
    return this;
  }

  close(cb?: () => void): void {
    cb?.();
  }

  /** The oldest packet held: the one MQTT.js sends first after a reconnect. */
  first(): { topic: string; payload: string | Buffer } | null {
    for (const p of this.packets.values()) {
      if (typeof p.topic === 'string' && (typeof p.payload === 'string' || Buffer.isBuffer(p.payload))) return { topic: p.topic, payload: p.payload };
    }
    return null;
  }

  find(topic: string, payload: string | Buffer): number | null {
    for (const [id, p] of this.packets) {
      if (p.topic !== topic) continue;
      const same = typeof payload === 'string' ? p.payload === payload || (Buffer.isBuffer(p.payload) && p.payload.toString() === payload) : Buffer.isBuffer(p.payload) && payload.equals(p.payload);
      if (same) return id;
    }
    return null;
  }

  remove(messageId: number): void {
    this.packets.delete(messageId);
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

/**
 * One connect and disconnect, for `butler-mqtt check-config --connect`: resolves when the broker
 * accepted the connection, rejects with its reason. Here so that no other module talks MQTT.
 */
export async function probeBroker(url: string, options: IClientOptions, timeoutMs: number): Promise<void> {
  const client = await mqtt.connectAsync(url, { ...options, clean: true, reconnectPeriod: 0, connectTimeout: timeoutMs }, false);
  await client.endAsync();
}

/**
 * The broker of a connection's options as a URL and client options for a short-lived client of its own
 * (check-config --connect, watch): its own client id, the same credentials and TLS, no last will.
 */
export function separateClientOptions(o: BrokerConnectionOptions, clientId: string): { url: string; options: IClientOptions } {
  return {
    url: `${o.protocol}://${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`,
    options: {
      clientId: clientId.slice(0, 128),
      protocolVersion: o.protocolVersion,
      username: o.username,
      password: o.password,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      rejectUnauthorized: o.rejectUnauthorized,
      keepalive: o.keepaliveSeconds,
    },
  };
}
