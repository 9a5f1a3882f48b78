// Process entry: the butler-mqtt command line.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerRun } from './cli/run.ts';
import { registerCheckConfig } from './cli/check-config.ts';
import { registerAppenderXml } from './cli/appender-xml.ts';
import { registerSendTestEvent } from './cli/send-test-event.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('butler-mqtt')
  .description('Qlik Sense to MQTT bridge; reads Butler config files')
  .version(pkg.version, '-v, --version');
registerRun(program);
registerCheckConfig(program);
registerAppenderXml(program);
registerSendTestEvent(program);

await program.parseAsync(process.argv);
