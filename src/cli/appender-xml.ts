// `butler-mqtt appender-xml`: prints the Sense LocalLogConfig.xml that makes the scheduler (or the
// proxy) send its events to butler-mqtt over UDP. Exit 0 with the file on stdout, 2 on bad input.
import type { Command } from 'commander';
import { logAppenderXml, type AppenderKind } from '../sense/log-appender-xml.ts';

const DEFAULT_PORTS: Record<AppenderKind, number> = { scheduler: 9998, proxy: 9997 };

export function registerAppenderXml(program: Command): void {
  program
    .command('appender-xml')
    .usage('--host <host> [options]')
    .description('print the Qlik Sense LocalLogConfig.xml that sends reload events (or, with --service proxy, session events) to butler-mqtt')
    .requiredOption('--host <host>', '(required) host name or IP address of the butler-mqtt server, as the Sense server reaches it')
    .option('--port <port>', 'UDP port of butler-mqtt (default 9998 for the scheduler, 9997 for the proxy)')
    .option('--service <service>', 'scheduler (reload task events) or proxy (user session events)', 'scheduler')
    .action((opts: { host: string; port?: string; service: string }) => {
      if (opts.service !== 'scheduler' && opts.service !== 'proxy') {
        process.stderr.write(`butler-mqtt appender-xml: --service must be "scheduler" or "proxy", got ${JSON.stringify(opts.service)}\n`);
        process.exit(2);
      }
      const kind: AppenderKind = opts.service;
      const port = opts.port === undefined ? DEFAULT_PORTS[kind] : /^\d+$/.test(opts.port) ? Number(opts.port) : Number.NaN;
      const result = logAppenderXml(kind, { host: opts.host, port });
      if (!result.ok) {
        const shown = result.error.reason === 'invalid_port' && opts.port !== undefined ? `port must be an integer 1-65535, got ${JSON.stringify(opts.port)}` : result.error.detail;
        process.stderr.write(`butler-mqtt appender-xml: ${shown}\n`);
        process.exit(2);
      }
      process.stdout.write(result.value);
    });
}
