// `butler-mqtt watch [filter]`: a subscriber built in, so what the bridge publishes can be seen on
// any OS without another MQTT tool. Connects to the broker of the config (or --host/--port) with its
// own client id and no last will, prints each message (topic, retained flag, payload) and exits on
// Ctrl-C or after --count messages. Exit 0 when done, 1 when the broker cannot be reached, 2 on bad input.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { separateClientOptions } from '../mqtt/connection.ts';
import { mainConnectionOptions } from '../app.ts';
import { loadConfigOrExit } from './config-file.ts';

export interface WatchFormat {
  json: boolean;
}

/**
 * One message as printed: `<topic> [retained] <payload>`. With `json`, a payload that is a JSON object
 * or array is pretty-printed on the lines below the topic. Text that is not valid UTF-8 is shown as
 * its byte count and base64, an empty payload as `(empty)` (a retained empty payload clears the topic).
 */
export function formatMessage(topic: string, payload: Buffer, retain: boolean, format: WatchFormat): string {
  const head = `${topic}${retain ? ' [retained]' : ''}`;
  if (payload.length === 0) return `${head} (empty)\n`;
  const text = payload.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(payload)) return `${head} (${payload.length} bytes, not UTF-8, base64) ${payload.toString('base64')}\n`;
  if (format.json && /^\s*[[{]/.test(text)) {
    try {
      return `${head}\n${JSON.stringify(JSON.parse(text), null, 2)}\n`;
    } catch {
      // Not JSON after all: printed as it is.
    }
  }
  return `${head} ${text}\n`;
}

export interface WatchTarget {
  url: string;
  options: IClientOptions;
}

/** The broker of the config, with a client id of its own and without the bridge's last will. */
export function targetFromConfig(configFile: string | undefined): WatchTarget {
  const config = loadConfigOrExit(configFile);
  const o = mainConnectionOptions(config);
  return separateClientOptions(o, `${o.clientId}-watch-${randomBytes(3).toString('hex')}`);
}

/** Connects once; a refused or closed first attempt is an error (MQTT.js would retry for ever). */
function connectOnce(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { ...options, clean: true, reconnectPeriod: 0, connectTimeout: 10_000 });
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      client.removeListener('connect', ok);
      client.end(true);
      reject(err);
    };
    const onError = (err: Error) => fail(err);
    const onClose = () => fail(new Error('the broker closed the connection before accepting it'));
    const ok = () => {
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      resolve(client);
    };
    client.once('connect', ok);
    client.once('error', onError);
    client.once('close', onClose);
  });
}

function parseCount(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    process.stderr.write(`butler-mqtt watch: --count must be a whole number of 1 or more, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}

function parsePort(value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= 65535)) {
    process.stderr.write(`butler-mqtt watch: --port must be an integer 1-65535, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}

interface WatchOptions {
  config?: string;
  host?: string;
  port?: string;
  username?: string;
  password?: string;
  json?: boolean;
  count?: string;
}

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .argument('[filter]', 'MQTT topic filter', '#')
    .description('print the messages on the broker (topic, retained flag, payload) until Ctrl-C or --count messages')
    .option('-c, --config <file>', 'connect to the broker of this config file (default: $BUTLER_MQTT_CONFIG or the shipped config)')
    .option('--host <host>', 'connect to this broker instead (plain MQTT)')
    .option('--port <port>', 'port of --host', '1883')
    .option('--username <name>', 'user name for --host')
    .option('--password <password>', 'password for --host')
    .option('--json', 'pretty-print JSON payloads')
    .option('--count <n>', 'exit after this many messages')
    .action(async (filter: string, opts: WatchOptions) => {
      const count = opts.count === undefined ? Infinity : parseCount(opts.count);
      const target: WatchTarget = opts.host
        ? { url: `mqtt://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${parsePort(opts.port ?? '1883')}`, options: { clientId: `butler-mqtt-watch-${randomBytes(3).toString('hex')}`, username: opts.username, password: opts.password } }
        : targetFromConfig(opts.config);
      let client: MqttClient;
      try {
        client = await connectOnce(target.url, target.options);
      } catch (err) {
        process.stderr.write(`butler-mqtt watch: cannot connect to ${target.url}: ${(err as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      let stopping = false;
      const stop = () => {
        if (stopping) return;
        stopping = true;
        // Nothing is published, so there is nothing to wait for; the process ends when the socket closes.
        client.end(true);
        process.removeListener('SIGINT', stop);
        process.removeListener('SIGTERM', stop);
        process.removeListener('SIGBREAK', stop);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      // Windows console Ctrl-Break
      process.on('SIGBREAK', stop);
      // Reconnect after a lost connection; MQTT.js renews the subscription on each reconnect.
      client.options.reconnectPeriod = 1000;
      client.on('reconnect', () => process.stderr.write(`butler-mqtt watch: connection to ${target.url} lost; reconnecting\n`));
      client.on('error', (err) => process.stderr.write(`butler-mqtt watch: ${err.message}\n`));
      let seen = 0;
      client.on('message', (topic, payload, packet) => {
        if (seen >= count) return;
        seen += 1;
        process.stdout.write(formatMessage(topic, payload, packet.retain, { json: Boolean(opts.json) }));
        if (seen >= count) stop();
      });
      try {
        const granted = await client.subscribeAsync(filter, { qos: 1 });
        const refused = granted.find((g) => g.qos === 128);
        if (refused) throw new Error('the broker refused the subscription');
      } catch (err) {
        // --count reached (by retained messages) while the subscription was being confirmed: done, not an error.
        if (stopping) return;
        process.stderr.write(`butler-mqtt watch: cannot subscribe to ${JSON.stringify(filter)}: ${(err as Error).message}\n`);
        stop();
        process.exitCode = 1;
        return;
      }
      // Said once the broker granted the subscription: from here on nothing published is missed.
      if (!stopping) process.stderr.write(`watching ${JSON.stringify(filter)} on ${target.url} (Ctrl-C to stop)\n`);
    });
}
