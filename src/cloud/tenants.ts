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
