// The Qlik Cloud tenants whose events come straight from Qlik Cloud (Butler.qlikSenseCloud.tenants[]).
// The single-tenant Butler keys (Butler.qlikSenseCloud.event.mqtt.tenant) fill what the first tenant
// leaves empty, so an existing config only has to add a name and the intakes it wants.
import type { ButlerConfig } from '../config/schema.ts';

export interface CloudTenantConfig {
  name: string;
  url: string;
  /** '' = any tenant id is accepted. */
  tenantId: string;
  apiKey: string;
  caFile: string;
  webhookSecret: string;
  webhook: boolean;
  poller: boolean;
  pollIntervalSeconds: number;
  pollLookbackMinutes: number;
  pollOverlapMinutes: number;
  enrich: boolean;
}

export function cloudTenants(b: ButlerConfig): CloudTenantConfig[] {
  const legacy = b.qlikSenseCloud.event.mqtt.tenant;
  return b.qlikSenseCloud.tenants.map((t, i) => ({
    name: t.name,
    url: t.url || (i === 0 ? legacy.tenantUrl : ''),
    tenantId: t.tenantId || (i === 0 ? legacy.id : ''),
    apiKey: t.apiKey || (i === 0 ? legacy.auth.jwt.token : ''),
    caFile: t.caFile || (i === 0 ? legacy.caFile : ''),
    webhookSecret: t.webhookSecret,
    webhook: t.webhook,
    poller: t.poller,
    pollIntervalSeconds: t.pollIntervalSeconds,
    pollLookbackMinutes: t.pollLookbackMinutes,
    pollOverlapMinutes: t.pollOverlapMinutes,
    enrich: t.enrich,
  }));
}

/** Problems that make a tenant list unusable (checked at start): duplicate names, a poller without URL or key. */
export function cloudTenantProblems(tenants: CloudTenantConfig[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const t of tenants) {
    if (seen.has(t.name)) problems.push(`Butler.qlikSenseCloud.tenants: the name "${t.name}" is used twice`);
    seen.add(t.name);
    if (t.poller && (!t.url || !t.apiKey)) problems.push(`Butler.qlikSenseCloud.tenants "${t.name}": the poller needs url and apiKey`);
    if (t.webhookSecret && (t.webhookSecret.length < 32 || t.webhookSecret.length > 64)) problems.push(`Butler.qlikSenseCloud.tenants "${t.name}": webhookSecret must be 32-64 characters (Qlik Cloud's rule), it has ${t.webhookSecret.length}`);
  }
  return problems;
}
