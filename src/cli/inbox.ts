// `butler-mqtt inbox list | retry <id…|all> | drop <id…|all>`: the events the pipeline quarantined after
// they failed too often, on the store file of the config (Butler.mqttConfig.delivery.outboxFile). Works
// while the bridge runs; a released event is handled again within seconds.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { loadConfigOrExit } from './config-file.ts';
import { Store } from '../store/sqlite.ts';
import { InboxAdmin } from '../store/inbox-admin.ts';

function openStore(configOption: string | undefined): { store: Store; admin: InboxAdmin } {
  const config = loadConfigOrExit(configOption);
  const file = config.butler.mqttConfig.delivery.outboxFile;
  if (!existsSync(file)) {
    process.stderr.write(`butler-mqtt: no store file at ${file} (Butler.mqttConfig.delivery.outboxFile): the bridge has not run with this config yet\n`);
    process.exit(1);
  }
  const store = new Store({ file });
  return { store, admin: new InboxAdmin(store) };
}

function parseIds(args: string[]): number[] | 'all' {
  if (args.length === 1 && args[0] === 'all') return 'all';
  const ids = args.map((a) => Number(a));
  const bad = args.filter((_, i) => !Number.isInteger(ids[i]) || (ids[i] as number) <= 0);
  if (bad.length > 0 || ids.length === 0) {
    process.stderr.write(`butler-mqtt: expected event ids (from "butler-mqtt inbox list") or "all", got ${args.map((a) => JSON.stringify(a)).join(' ') || 'nothing'}\n`);
    process.exit(2);
  }
  return ids;
}

export function registerInbox(program: Command): void {
  const inbox = program.command('inbox').description('events set aside (quarantined) after their handling failed too often');
  inbox
    .command('list')
    .description('list quarantined events with their attempts and last error')
    .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config)')
    .option('--json', 'one JSON object per line')
    .action((opts: { config?: string; json?: boolean }) => {
      const { store, admin } = openStore(opts.config);
      try {
        const rows = admin.list();
        if (opts.json) {
          for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
          return;
        }
        if (rows.length === 0) {
          process.stdout.write('no quarantined events\n');
          return;
        }
        for (const r of rows) {
          process.stdout.write(`${r.id}  ${r.source}  ${r.attempts} attempts  quarantined ${new Date(r.quarantinedAt).toISOString()}\n    error: ${r.lastError}\n    input: ${JSON.stringify(r.payload)}\n`);
        }
        process.stdout.write(`${rows.length} quarantined event(s); "butler-mqtt inbox retry <id>|all" handles them again, "butler-mqtt inbox drop <id>|all" deletes them\n`);
      } finally {
        store.close();
      }
    });
  for (const [name, description] of [
    ['retry', 'put quarantined events back in the queue (the running bridge picks them up within seconds)'],
    ['drop', 'delete quarantined events for good'],
  ] as const) {
    inbox
      .command(`${name} <ids...>`)
      .description(description)
      .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config)')
      .action((args: string[], opts: { config?: string }) => {
        const ids = parseIds(args);
        const { store, admin } = openStore(opts.config);
        try {
          const n = name === 'retry' ? admin.release(ids) : admin.drop(ids);
          process.stdout.write(`${n} event(s) ${name === 'retry' ? 'released for another attempt' : 'dropped'}\n`);
          if (n === 0) process.exitCode = 1;
        } finally {
          store.close();
        }
      });
  }
}
