// `butler-mqtt run` (the default command): start the bridge and stop it cleanly on SIGINT/SIGTERM
// within a bounded time; whatever is undelivered stays in the outbox for the next start.
import { startupDone } from '../startup-heap.ts';
import type { Command } from 'commander';
import { loadConfigOrExit, preflightOrExit } from './config-file.ts';
import { formatIssue } from '../config/load.ts';
import { App, StartError } from '../app.ts';
import { configuredAddresses, startupSummary } from './startup-summary.ts';

export function registerRun(program: Command): void {
  program
    .command('run', { isDefault: true })
    .description('run the bridge (default)')
    .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config/butler-mqtt.yaml)')
    .action(async (opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      // Unreadable files, bad PEMs, an outbox path that cannot be written: named by config key, exit 2.
      const preflightWarnings = preflightOrExit(config);
      const app = new App(config);
      for (const w of [...config.unknownKeys.map((i) => formatIssue(i).trim()), ...preflightWarnings.map((p) => `${p.key}: ${p.message}`)]) app.logger.warn(`config: ${w}`);
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) {
          app.logger.warn(`${signal} again: exiting now; undelivered messages stay in the outbox`);
          process.exit(1);
        }
        stopping = true;
        app.logger.info(`${signal} received: stopping`);
        const limitMs = (config.butler.mqttConfig.delivery.shutdownFlushSeconds + 10) * 1000;
        const force = setTimeout(() => {
          app.logger.error(`shutdown did not finish within ${limitMs} ms; exiting`);
          process.exit(1);
        }, limitMs);
        force.unref();
        app.stop().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      // Windows console Ctrl-Break
      process.on('SIGBREAK', () => shutdown('SIGBREAK'));
      try {
        await app.start();
      } catch (err) {
        if (err instanceof StartError) process.exit(1);
        throw err;
      }
      startupDone();
      // What the parts bound (port 0 in the config means a port the OS chose).
      const at = configuredAddresses(config);
      if (at.embeddedBroker && app.embeddedBroker) at.embeddedBroker.port = app.embeddedBroker.port;
      if (at.http && app.http) at.http.port = app.http.port;
      at.udp = app.listeners();
      for (const line of startupSummary(config, at)) app.logger.info({ summary: true }, line);
    });
}
