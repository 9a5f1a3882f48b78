// `butler-mqtt cloud webhook create | list | delete`: the Qlik Cloud webhook of a tenant in
// Butler.qlikSenseCloud.tenants, through the tenant's webhooks API with the tenant's API key.
// `create` generates a secret, writes it to the tenant's webhookSecret in the config file first
// (comments and layout kept), then creates the webhook for com.qlik.v1.reload.finished pointing at
// <public URL>/qlik-cloud/webhook/<tenant>; if Qlik Cloud refuses, the config file is put back.
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { isMap, isSeq, parseDocument, type YAMLMap } from 'yaml';
import { loadConfigOrExit } from './config-file.ts';
import { cloudTenants, type CloudTenantConfig } from '../cloud/tenants.ts';
import { CloudClient } from '../cloud/cloud-client.ts';
import { RELOAD_FINISHED } from '../cloud/cloud-event.ts';
import { createLogger } from '../observability/logger.ts';

const WEBHOOK_PATH = '/qlik-cloud/webhook';

function fail(message: string, code = 1): never {
  process.stderr.write(`butler-mqtt: ${message}\n`);
  process.exit(code);
}

function tenantOf(configOption: string | undefined, name: string): { file: string; tenant: CloudTenantConfig } {
  const config = loadConfigOrExit(configOption);
  const tenants = cloudTenants(config.butler);
  const tenant = tenants.find((t) => t.name === name);
  if (!tenant) fail(`no tenant named "${name}" in Butler.qlikSenseCloud.tenants of ${config.file} (known: ${tenants.map((t) => t.name).join(', ') || 'none'})`, 2);
  if (!tenant.url || !tenant.apiKey) fail(`tenant "${name}" needs url and apiKey for the webhooks API`, 2);
  return { file: config.file, tenant };
}

function client(tenant: CloudTenantConfig): CloudClient {
  return new CloudClient({ tenantUrl: tenant.url, token: tenant.apiKey, ca: tenant.caFile || undefined, retries: 1 }, { logger: createLogger({ level: 'error' }) });
}

/** The webhook's target: the public base URL of the bridge plus /qlik-cloud/webhook/<tenant> (unless given in full). */
export function webhookTarget(publicUrl: string, tenant: string): string {
  const trimmed = publicUrl.replace(/\/+$/, '');
  const url = new URL(trimmed);
  if (url.protocol !== 'https:') throw new Error(`the webhook URL must use https (Qlik Cloud only delivers to https URLs with a domain name), got ${publicUrl}`);
  return trimmed.endsWith(`${WEBHOOK_PATH}/${tenant}`) ? trimmed : `${trimmed}${WEBHOOK_PATH}/${tenant}`;
}

/** Sets Butler.qlikSenseCloud.tenants[name=tenant].webhookSecret in the YAML text, keeping comments; the new text. */
export function withWebhookSecret(text: string, tenant: string, secret: string): string {
  const doc = parseDocument(text);
  const tenants = doc.getIn(['Butler', 'qlikSenseCloud', 'tenants']);
  if (!isSeq(tenants)) throw new Error('the config file has no Butler.qlikSenseCloud.tenants list');
  const item = tenants.items.find((i): i is YAMLMap => isMap(i) && i.get('name') === tenant);
  if (!item) throw new Error(`Butler.qlikSenseCloud.tenants has no entry with name "${tenant}"`);
  item.set('webhookSecret', secret);
  return doc.toString();
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export function registerCloudWebhook(program: Command): void {
  const webhook = program.command('cloud').description('Qlik Cloud tenants of Butler.qlikSenseCloud.tenants').command('webhook').description('the Qlik Cloud webhook that delivers reload events to this bridge');
  webhook
    .command('create')
    .description('create the webhook in the tenant with a new secret, and write the secret to the config file')
    .requiredOption('-t, --tenant <name>', 'tenant name (Butler.qlikSenseCloud.tenants[].name)')
    .requiredOption('-u, --url <url>', 'public https base URL of this bridge as Qlik Cloud reaches it (e.g. https://bridge.example.com)')
    .option('-n, --name <name>', 'webhook name in Qlik Cloud (default: butler-mqtt <tenant>)')
    .option('-c, --config <file>', 'config file (default: $BUTLER_MQTT_CONFIG or the shipped config)')
    .action(async (opts: { tenant: string; url: string; name?: string; config?: string }) => {
      const { file, tenant } = tenantOf(opts.config, opts.tenant);
      let target: string;
      try {
        target = webhookTarget(opts.url, tenant.name);
      } catch (err) {
        fail((err as Error).message, 2);
      }
      // 64 hex characters: the longest secret Qlik Cloud takes.
      const secret = randomBytes(32).toString('hex');
      const original = readFileSync(file, 'utf8');
      try {
        writeAtomically(file, withWebhookSecret(original, tenant.name, secret));
      } catch (err) {
        fail(`the secret could not be written to ${file}: ${(err as Error).message}`);
      }
      const api = client(tenant);
      try {
        const created = await api.createWebhook({
          name: opts.name ?? `butler-mqtt ${tenant.name}`,
          description: 'Reload events for butler-mqtt (MQTT bridge)',
          url: target,
          eventTypes: [RELOAD_FINISHED],
          level: 'tenant',
          enabled: true,
          secret,
        });
        if (!created.ok) {
          writeAtomically(file, original);
          fail(`Qlik Cloud did not create the webhook: ${created.error.message}; ${file} is unchanged`);
        }
        process.stdout.write(`created webhook ${String(created.value['id'])} → ${target} (${RELOAD_FINISHED})\nthe secret is in ${file} (tenant ${tenant.name}, webhookSecret); restart the bridge to use it\n`);
      } finally {
        await api.close();
      }
    });
  webhook
    .command('list')
    .description("list the tenant's webhooks")
    .requiredOption('-t, --tenant <name>', 'tenant name')
    .option('-c, --config <file>', 'config file')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { tenant: string; config?: string; json?: boolean }) => {
      const { tenant } = tenantOf(opts.config, opts.tenant);
      const api = client(tenant);
      try {
        const list = await api.listWebhooks();
        if (!list.ok) fail(`the webhooks could not be listed: ${list.error.message}`);
        for (const w of list.value) {
          if (opts.json) process.stdout.write(`${JSON.stringify(w)}\n`);
          else process.stdout.write(`${String(w['id'])}  ${w['enabled'] ? 'enabled ' : 'disabled'}  ${String(w['name'])}  ${String(w['url'])}  ${Array.isArray(w['eventTypes']) ? w['eventTypes'].join(',') : ''}\n`);
        }
        if (!opts.json && list.value.length === 0) process.stdout.write('no webhooks\n');
      } finally {
        await api.close();
      }
    });
  webhook
    .command('delete')
    .description('delete a webhook of the tenant')
    .requiredOption('-t, --tenant <name>', 'tenant name')
    .argument('<id>', 'webhook id (from "butler-mqtt cloud webhook list")')
    .option('-c, --config <file>', 'config file')
    .action(async (id: string, opts: { tenant: string; config?: string }) => {
      const { tenant } = tenantOf(opts.config, opts.tenant);
      const api = client(tenant);
      try {
        const r = await api.deleteWebhook(id);
        if (!r.ok) fail(`webhook ${id} could not be deleted: ${r.error.message}`);
        process.stdout.write(`deleted webhook ${id}\n`);
      } finally {
        await api.close();
      }
    });
}
