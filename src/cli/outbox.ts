// `butler-mqtt outbox list | dead | retry <id|all> | drop <id|all>`: looks into the outbox and the
// dead-letter table of the configured SQLite file (Butler.mqttConfig.delivery.outboxFile). Works
// while the bridge runs (WAL mode lets a second process open the file; a running bridge notices
// retried rows within a few seconds and sends them).
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import Database from 'better-sqlite3';
import { loadConfigOrExit } from './config-file.ts';
import { DeadLetters, type DeadLetterRow } from '../store/dead-letters.ts';

const EXIT_USAGE = 2;
const EXIT_FAILED = 1;

function fail(message: string, code = EXIT_FAILED): never {
  process.stderr.write(`butler-mqtt outbox: ${message}\n`);
  process.exit(code);
}

/** `all`, or a list of row ids (`7`, `7,9`, `7 9`). */
export function parseIds(args: string[]): number[] | 'all' {
  if (args.length === 1 && args[0] === 'all') return 'all';
  const parts = args.flatMap((a) => a.split(',')).filter((p) => p !== '');
  if (parts.length === 0) fail('give the row ids (as listed by `butler-mqtt outbox dead`) or "all"', EXIT_USAGE);
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || Number(p) < 1 || !Number.isSafeInteger(Number(p))) fail(`not a row id: ${JSON.stringify(p)} (a positive integer, or "all")`, EXIT_USAGE);
    return Number(p);
  });
}

function open(configOption: string | undefined): { db: Database.Database; file: string; maxMessages: number } {
  const config = loadConfigOrExit(configOption);
  const d = config.butler.mqttConfig.delivery;
  if (!existsSync(d.outboxFile)) fail(`no outbox file at ${d.outboxFile} (Butler.mqttConfig.delivery.outboxFile); the bridge creates it at its first start`);
  let db: Database.Database;
  try {
    db = new Database(d.outboxFile, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
  } catch (err) {
    fail(`cannot open ${d.outboxFile} (Butler.mqttConfig.delivery.outboxFile): ${(err as Error).message}`);
  }
  const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letter'").get();
  if (!hasTable) {
    db.close();
    fail(`${d.outboxFile} has no dead-letter table yet: start this version of the bridge once to update the file`);
  }
  return { db, file: d.outboxFile, maxMessages: d.maxMessages };
}

const iso = (ms: number) => new Date(ms).toISOString();
const preview = (payload: Buffer | string) => {
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  const one = text.replace(/\s+/g, ' ');
  return one.length > 60 ? `${one.slice(0, 57)}...` : one;
};

function printDead(rows: DeadLetterRow[], json: boolean): void {
  if (json) {
    const out = rows.map((r) => ({ id: r.id, topic: r.topic, kind: r.kind, qos: r.qos, retain: r.retain, bytes: r.bytes, createdAt: iso(r.createdAt), movedAt: iso(r.movedAt), attempts: r.attempts, reason: r.reason, payload: typeof r.payload === 'string' ? r.payload : r.payload.toString('utf8') }));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  if (rows.length === 0) {
    process.stdout.write('the dead-letter table is empty\n');
    return;
  }
  for (const r of rows) {
    process.stdout.write(`${r.id}\t${iso(r.movedAt)}\t${r.kind}\tattempts ${r.attempts}\t${JSON.stringify(r.topic)}\t${preview(r.payload)}\n\treason: ${r.reason}\n`);
  }
}

export function registerOutbox(program: Command): void {
  const outbox = program
    .command('outbox')
    .description('look into the outbox and the dead-letter table of the configured SQLite file; retry or drop dead letters (works while the bridge runs)')
    .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config/butler-mqtt.yaml)');
  const configOf = (cmd: Command): string | undefined => (cmd.optsWithGlobals() as { config?: string }).config;

  outbox
    .command('list')
    .description('messages waiting in the outbox, oldest first')
    .option('--limit <n>', 'at most this many rows', '50')
    .option('--json', 'JSON output')
    .action((opts: { limit: string; json?: boolean }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) fail(`--limit must be a positive integer, got ${JSON.stringify(opts.limit)}`, EXIT_USAGE);
      const { db, file } = open(configOf(cmd));
      try {
        const total = db.prepare('SELECT count(*) FROM outbox').pluck().get() as number;
        const rows = db.prepare('SELECT id, topic, payload, qos, retain, kind, bytes, created_at AS createdAt FROM outbox ORDER BY id LIMIT ?').all(limit) as { id: number; topic: string; payload: Buffer | string; qos: number; retain: number; kind: string; bytes: number; createdAt: number }[];
        if (opts.json) {
          process.stdout.write(`${JSON.stringify({ total, rows: rows.map((r) => ({ id: r.id, topic: r.topic, kind: r.kind, qos: r.qos, retain: r.retain === 1, bytes: r.bytes, createdAt: iso(r.createdAt) })) }, null, 2)}\n`);
          return;
        }
        process.stdout.write(`${total} message(s) waiting in ${file}${total > rows.length ? ` (first ${rows.length} shown)` : ''}\n`);
        for (const r of rows) process.stdout.write(`${r.id}\t${iso(r.createdAt)}\t${r.kind}\tqos ${r.qos}${r.retain === 1 ? ' retained' : ''}\t${JSON.stringify(r.topic)}\t${preview(r.payload)}\n`);
      } finally {
        db.close();
      }
    });

  outbox
    .command('dead')
    .description('messages in the dead-letter table (the broker kept answering them with a disconnect), most recent first')
    .option('--limit <n>', 'at most this many rows', '50')
    .option('--json', 'JSON output')
    .action((opts: { limit: string; json?: boolean }, cmd: Command) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) fail(`--limit must be a positive integer, got ${JSON.stringify(opts.limit)}`, EXIT_USAGE);
      const { db } = open(configOf(cmd));
      try {
        printDead(new DeadLetters(db).latest(limit), Boolean(opts.json));
      } finally {
        db.close();
      }
    });

  outbox
    .command('retry')
    .description('move dead letters back to the end of the outbox (a running bridge sends them within a few seconds)')
    .argument('<ids...>', 'row ids as listed by `outbox dead`, or "all"')
    .action((args: string[], _opts: unknown, cmd: Command) => {
      const which = parseIds(args);
      const { db, maxMessages } = open(configOf(cmd));
      try {
        const dead = new DeadLetters(db);
        const waiting = db.prepare('SELECT count(*) FROM outbox').pluck().get() as number;
        const wanted = which === 'all' ? dead.count : which.length;
        if (waiting + wanted > maxMessages) fail(`the outbox holds ${waiting} of at most ${maxMessages} messages (Butler.mqttConfig.delivery.maxMessages): no room for ${wanted} more; nothing moved`);
        const change = dead.retry(which);
        for (const id of change.missing) process.stderr.write(`butler-mqtt outbox: no dead letter with id ${id}\n`);
        process.stdout.write(`${change.ids.length} message(s) moved back to the outbox${change.ids.length ? `: ${change.ids.join(', ')}` : ''}\n`);
        if (change.missing.length > 0) process.exitCode = EXIT_FAILED;
      } finally {
        db.close();
      }
    });

  outbox
    .command('drop')
    .description('delete dead letters for good')
    .argument('<ids...>', 'row ids as listed by `outbox dead`, or "all"')
    .action((args: string[], _opts: unknown, cmd: Command) => {
      const which = parseIds(args);
      const { db } = open(configOf(cmd));
      try {
        const change = new DeadLetters(db).drop(which);
        for (const id of change.missing) process.stderr.write(`butler-mqtt outbox: no dead letter with id ${id}\n`);
        process.stdout.write(`${change.ids.length} dead letter(s) dropped${change.ids.length ? `: ${change.ids.join(', ')}` : ''}\n`);
        if (change.missing.length > 0) process.exitCode = EXIT_FAILED;
      } finally {
        db.close();
      }
    });
}
