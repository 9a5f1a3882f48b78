// Process entry: the butler-mqtt command line.
import { packageVersion } from './package-root.ts';
import { Command } from 'commander';
import { registerRun } from './cli/run.ts';
import { registerCheckConfig } from './cli/check-config.ts';
import { registerAppenderXml } from './cli/appender-xml.ts';
import { registerSendTestEvent } from './cli/send-test-event.ts';
import { registerInbox } from './cli/inbox.ts';
import { registerOutbox } from './cli/outbox.ts';
import { registerWatch } from './cli/watch.ts';
import { registerCloudWebhook } from './cli/cloud-webhook.ts';


const program = new Command('butler-mqtt')
  .description('Qlik Sense to MQTT bridge; reads Butler config files')
  .version(packageVersion(), '-v, --version');
registerRun(program);
registerCheckConfig(program);
registerAppenderXml(program);
registerSendTestEvent(program);
registerInbox(program);
registerOutbox(program);
registerWatch(program);
registerCloudWebhook(program);

await program.parseAsync(process.argv);
