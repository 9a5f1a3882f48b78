// Reads a Butler-format YAML file, applies defaults, validates everything at once and resolves
// file paths against the file's directory. Every problem becomes one ConfigIssue with its YAML path,
// what was expected and what was found; nothing starts unless the list is empty.
import { readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { parseDocument, LineCounter, isNode, type Document, type YAMLError } from 'yaml';
import Value from 'typebox/value';
import type { TSchema } from 'typebox';
import { ConfigSchema, ButlerSchema, READ_SECTIONS, type ButlerConfig } from './schema.ts';
import { checkPublishTopic, checkTopicFilter, topicMatches } from '../mqtt/topics.ts';
import { parseSchedule } from '../alerts/schedule.ts';
import { findUnknownKeys } from './unknown-keys.ts';

export interface ConfigIssue {
  /** Dotted YAML path, e.g. Butler.mqttConfig.brokerPort */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`${file}: ${issues.length} configuration problem${issues.length === 1 ? '' : 's'}:\n` + issues.map(formatIssue).join('\n'));
  }
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line ? ` (line ${issue.line}${issue.column ? `, column ${issue.column}` : ''})` : '';
  return `  ${issue.path}: ${issue.message}${where}`;
}

export interface LoadedConfig {
  file: string;
  dir: string;
  butler: ButlerConfig;
  /** Butler sections present in the file that butler-mqtt does not read. */
  ignoredSections: string[];
  /** Unknown keys inside the sections butler-mqtt reads (not near misses, which are errors): log once. */
  unknownKeys: ConfigIssue[];
  /** Configured secret values, for log masking. */
  secrets: string[];
  /** The effective MQTT client id. */
  clientId: string;
}

export interface LoadOptions {
  /** Unknown keys inside read sections are errors too (check-config --strict). */
  strict?: boolean;
}

export function loadConfigFile(file: string, options: LoadOptions = {}): LoadedConfig {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, [{ path: '(file)', message: `cannot read the config file: ${(err as Error).message}` }]);
  }
  return parseConfigText(text, abs, options);
}

export function parseConfigText(text: string, file: string, options: LoadOptions = {}): LoadedConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length > 0) throw new ConfigError(file, yamlSyntaxIssues(doc.errors, text, lineCounter));
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    // Well-formed YAML that cannot become data, e.g. an alias bomb the library refuses to expand.
    throw new ConfigError(file, [{ path: '(yaml)', message: `YAML cannot be read: ${(err as Error).message}` }]);
  }
  const lineOf = (segments: (string | number)[]): number | undefined => {
    const node = doc.getIn(segments, true);
    if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    // Fall back to the nearest existing parent (a missing key is reported at its section).
    if (segments.length > 1) return lineOf(segments.slice(0, -1));
    return undefined;
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !('Butler' in raw)) {
    throw new ConfigError(file, [{ path: '(top level)', message: 'expected a mapping with a top-level "Butler" key' }]);
  }
  const root = raw as { Butler: unknown };
  if (root.Butler === null || typeof root.Butler !== 'object' || Array.isArray(root.Butler)) {
    throw new ConfigError(file, [{ path: 'Butler', message: `expected a mapping, got ${describeValue(root.Butler)}`, line: lineOf(['Butler']) }]);
  }
  const butlerRaw = root.Butler as Record<string, unknown>;
  const keys = findUnknownKeys(doc, lineCounter, ButlerSchema);
  const ignoredSections = keys.ignoredSections.filter((k) => !READ_SECTIONS.includes(k));
  const keyIssues: ConfigIssue[] = [...keys.errors, ...(options.strict ? keys.warnings.map((w) => ({ ...w, message: `${w.message}; refused in strict mode` })) : [])];

  // YAML writes an empty list, mapping or string as null (Butler's template has several); treat it as
  // empty so defaults apply.
  nullsToEmpty(ButlerSchema, butlerRaw);
  Value.Default(ConfigSchema, root);
  const issues: ConfigIssue[] = validate(ButlerSchema, butlerRaw, ['Butler']).map((i) => ({ path: i.path, message: i.message, line: lineOf(i.segments) }));
  if (keyIssues.length + issues.length > 0) throw new ConfigError(file, [...keyIssues, ...issues]);

  const butler = (root as { Butler: ButlerConfig }).Butler;
  const dir = path.dirname(file);
  const semantic = checkSemantics(butler, dir);
  if (semantic.length > 0) {
    throw new ConfigError(file, semantic.map((i) => ({ ...i, line: i.line ?? lineOf(i.path.split('.')) })));
  }
  resolvePaths(butler, dir);
  if (butler.mqttConfig.protocolVersion === 5) butler.mqttConfig.protocolVersion = '5';
  const clientId = butler.mqttConfig.azureEventGrid.enable
    ? butler.mqttConfig.azureEventGrid.clientId
    : butler.mqttConfig.clientId || `butler-mqtt-${os.hostname()}`;
  return { file, dir, butler, ignoredSections, unknownKeys: options.strict ? [] : keys.warnings, secrets: collectSecrets(butler), clientId };
}

// Follow-on errors the YAML parser reports after a real mistake (the lines after it no longer parse).
const FOLLOW_ON = new Set(['BLOCK_AS_IMPLICIT_KEY', 'MULTILINE_IMPLICIT_KEY', 'UNEXPECTED_TOKEN', 'BAD_INDENT']);
const MAX_SYNTAX_ISSUES = 5;

/**
 * One issue per mistake, with line and column: the parser reports each broken line and everything it
 * could not parse after it, so errors on the same line, and follow-on errors within two lines of the one
 * before, are dropped; the same mistake repeated (a tab on many lines) becomes one issue naming the lines.
 */
function yamlSyntaxIssues(errors: readonly YAMLError[], text: string, lineCounter: LineCounter): ConfigIssue[] {
  const kept: { code: string; text: string; line: number; col: number; lines: number[] }[] = [];
  let previousLine = -Infinity;
  for (const e of errors) {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    const sameLine = kept.some((k) => k.lines.includes(line));
    const followOn = FOLLOW_ON.has(e.code) && line - previousLine <= 2;
    previousLine = line;
    if (sameLine || (followOn && kept.length > 0)) continue;
    let message = e.message.split('\n')[0] as string;
    let at = { line, col };
    if (e.code === 'MISSING_CHAR' && /quote/.test(message)) {
      // Reported at the end of the file; the useful place is where the quote was opened.
      const opened = unclosedQuoteLine(text, line);
      if (opened) at = opened;
      message = `${message} (the quoted value opened on line ${at.line} is never closed)`;
    }
    const same = kept.find((k) => k.code === e.code && k.text === message);
    if (same) {
      same.lines.push(line);
      continue;
    }
    kept.push({ code: e.code, text: message, line: at.line, col: at.col, lines: [line] });
  }
  const issues: ConfigIssue[] = kept.slice(0, MAX_SYNTAX_ISSUES).map((k) => ({
    path: '(yaml)',
    message: `YAML syntax error: ${k.text}${k.lines.length > 1 ? ` (also on line${k.lines.length > 2 ? 's' : ''} ${k.lines.slice(1).join(', ')})` : ''}`,
    line: k.line,
    column: k.col,
  }));
  if (kept.length > MAX_SYNTAX_ISSUES) issues.push({ path: '(yaml)', message: `${kept.length - MAX_SYNTAX_ISSUES} more YAML syntax errors after these; fix the first ones and check again` });
  return issues;
}

/** The first line (and column) before `untilLine` where a quoted value starts and does not end. */
function unclosedQuoteLine(text: string, untilLine: number): { line: number; col: number } | undefined {
  const lines = text.split('\n');
  for (let i = 0; i < Math.min(lines.length, untilLine); i++) {
    const l = lines[i] as string;
    const m = /^(\s*(?:-\s+)?[^#'"]*?:\s+|\s*-\s+)(["'])/.exec(l);
    if (!m) continue;
    const quote = m[2] as string;
    const rest = l.slice((m[1] as string).length + 1);
    const closed = quote === '"' ? /(^|[^\\])(\\\\)*"/.test(rest) : rest.replace(/''/g, '').includes("'");
    if (!closed) return { line: i + 1, col: (m[1] as string).length + 1 };
  }
  return undefined;
}

/**
 * Validates section by section (the validator reports a bounded number of errors per call, and a
 * union reports one error per branch): one issue per offending key, worded from the schema.
 */
function validate(schema: TSchema, value: unknown, segments: string[]): (ConfigIssue & { segments: string[] })[] {
  const s = schema as { type?: string; properties?: Record<string, TSchema> };
  if (s.type === 'object' && s.properties && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    return Object.entries(s.properties).flatMap(([key, child]) => validate(child, obj[key], [...segments, key]));
  }
  const errors = Value.Errors(schema, value);
  if (errors.length === 0) return [];
  // Per offending location keep the error of the outermost schema (a union's own error, not each branch's).
  const byPath = new Map<string, (typeof errors)[number]>();
  for (const err of errors) {
    const prev = byPath.get(err.instancePath);
    if (!prev || err.schemaPath.length < prev.schemaPath.length) byPath.set(err.instancePath, err);
  }
  return [...byPath.values()].map((err) => {
    const at = [...segments, ...err.instancePath.split('/').slice(1).map(decodePointer)];
    const found = err.instancePath ? valueAt(value, err.instancePath.split('/').slice(1).map(decodePointer)) : value;
    let message: string;
    if (err.keyword === 'required') {
      const missing = (err.params as { requiredProperties?: string[] }).requiredProperties ?? [];
      message = `missing required key${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`;
    } else {
      message = `expected ${expectedText(schemaAt(schema, err.schemaPath), err.keyword)}, got ${describeValue(found)}`;
    }
    return { path: dotted(at), message, segments: at };
  });
}

function decodePointer(s: string): string {
  return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

function dotted(segments: (string | number)[]): string {
  return segments.reduce<string>((acc, s) => (/^\d+$/.test(String(s)) ? `${acc}[${s}]` : `${acc}.${s}`), '').slice(1) || '(top level)';
}

function valueAt(root: unknown, segments: string[]): unknown {
  let cur: unknown = root;
  for (const s of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[s];
  }
  return cur;
}

function schemaAt(root: TSchema, schemaPath: string): TSchema {
  let cur: unknown = root;
  for (const seg of schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodePointer)) {
    if (cur === null || typeof cur !== 'object') break;
    const next = (cur as Record<string, unknown>)[seg];
    if (next === undefined) break;
    cur = next;
  }
  // schemaPath may end at a keyword container (e.g. properties); step back to a schema object.
  return cur as TSchema;
}

function expectedText(schema: TSchema, keyword: string): string {
  const s = schema as Record<string, unknown>;
  if (typeof s.expected === 'string') return s.expected;
  if (keyword === 'additionalProperties') return 'no other keys';
  const type = s.type;
  if (type === 'integer') return 'an integer';
  if (type === 'number') return 'a number';
  if (type === 'boolean') return 'true or false';
  if (type === 'string') return 'a string';
  if (type === 'array') return 'a list';
  if (type === 'object') return 'a mapping';
  return 'a valid value';
}

export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

function nullsToEmpty(schema: TSchema, value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  const s = schema as { type?: string; properties?: Record<string, TSchema>; items?: TSchema };
  if (s.type === 'object' && s.properties && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const [key, child] of Object.entries(s.properties)) {
      const c = child as { type?: string };
      if (obj[key] === null && (c.type === 'array' || c.type === 'object' || c.type === 'string')) {
        obj[key] = c.type === 'array' ? [] : c.type === 'object' ? {} : '';
      }
      nullsToEmpty(child, obj[key]);
    }
  } else if (s.type === 'array' && s.items && Array.isArray(value)) {
    for (const item of value) nullsToEmpty(s.items, item);
  }
}

const PLACEHOLDER = /<[^<>]*>/;

/** Every string leaf under an object, with its dotted path; sub-sections with `enable: false` are skipped. */
function* stringLeaves(value: unknown, prefix: string): Generator<[string, string]> {
  if (typeof value === 'string') {
    yield [prefix, value];
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield* stringLeaves(value[i], `${prefix}[${i}]`);
  } else if (value !== null && typeof value === 'object') {
    if ((value as { enable?: unknown }).enable === false) return;
    for (const [k, v] of Object.entries(value)) yield* stringLeaves(v, `${prefix}.${k}`);
  }
}

function checkSemantics(b: ButlerConfig, dir: string): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (p: string, message: string) => issues.push({ path: `Butler.${p}`, message });
  const m = b.mqttConfig;
  const eventGrid = m.azureEventGrid.enable;
  const fileMustExist = (p: string, value: string, what: string) => {
    if (!value) {
      add(p, `expected the path of the ${what}, got an empty value`);
      return;
    }
    const abs = path.resolve(dir, value);
    if (!existsSync(abs) || !statSync(abs).isFile()) add(p, `expected the ${what}, but the file ${JSON.stringify(value)} does not exist`);
  };
  const optionalFile = (p: string, value: string, what: string) => {
    if (value) fileMustExist(p, value, what);
  };

  // Placeholders left from Butler's template are only an error where the section is in use.
  const placeholderScan = (section: string, value: unknown) => {
    for (const [p, v] of stringLeaves(value, section)) {
      if (PLACEHOLDER.test(v)) add(p, `expected a real value, got the placeholder ${JSON.stringify(v)}`);
    }
  };

  if (m.enable) {
    placeholderScan('mqttConfig', m);
    if (!m.embeddedBroker.enable || m.brokerHost || eventGrid) {
      if (!m.brokerHost) add('mqttConfig.brokerHost', 'expected a host name or IP address, got an empty value');
    }
    const publishTopics: (keyof typeof m)[] = [
      'taskFailureTopic', 'taskFailureFullTopic', 'taskFailureServerStatusTopic', 'taskAbortedTopic', 'taskAbortedFullTopic',
      'serviceRunningTopic', 'serviceStoppedTopic', 'serviceStatusTopic', 'qlikSenseServerLicenseTopic', 'qlikSenseServerLicenseExpireTopic',
      'taskStartTopic', 'cloudReloadFailureTopic', 'cloudReloadFailureFullTopic',
    ];
    const optionalTopics: (keyof typeof m)[] = [
      'taskStartResultTopic', 'taskSuccessTopic', 'taskSuccessFullTopic', 'sessionStartTopic', 'sessionStopTopic',
      'connectionOpenTopic', 'connectionCloseTopic', 'userEventTopic', 'activeUserCountTopic', 'activeUsersTopic',
      'bridgeTopicRoot',
    ];
    const eventGridTopicLimits = (key: string, value: string) => {
      const levels = value.split('/').length;
      if (Buffer.byteLength(value) > 256) add(`mqttConfig.${key}`, 'expected a topic of at most 256 bytes (Azure Event Grid limit)');
      if (levels > 8) add(`mqttConfig.${key}`, `expected a topic of at most 8 levels (Azure Event Grid limit), got ${levels}`);
    };
    const checkTopic = (key: string, value: string) => {
      const r = checkPublishTopic(value);
      if (!r.ok) add(`mqttConfig.${key}`, `expected an MQTT topic to publish to, got ${JSON.stringify(value)}: ${r.reason}`);
      else if (eventGrid) eventGridTopicLimits(key, value);
    };
    for (const key of publishTopics) checkTopic(key, m[key] as string);
    for (const key of optionalTopics) if (m[key]) checkTopic(key, m[key] as string);
    if (m.homeAssistant.enable) for (const key of ['discoveryPrefix', 'statusTopic'] as const) checkTopic(`homeAssistant.${key}`, m.homeAssistant[key]);
    if (m.availability.enable) {
      const r = checkPublishTopic(m.availability.topic);
      if (!r.ok) add('mqttConfig.availability.topic', `expected an MQTT topic to publish to, got ${JSON.stringify(m.availability.topic)}: ${r.reason}`);
      else if (eventGrid) eventGridTopicLimits('availability.topic', m.availability.topic);
    }
    const sub = checkTopicFilter(m.subscriptionRootTopic);
    if (!sub.ok) add('mqttConfig.subscriptionRootTopic', `expected an MQTT topic filter, got ${JSON.stringify(m.subscriptionRootTopic)}: ${sub.reason}`);
    // Event Grid applies the same size and level limits to topic filters.
    else if (eventGrid) eventGridTopicLimits('subscriptionRootTopic', m.subscriptionRootTopic);
    else if (checkPublishTopic(m.taskStartTopic).ok && !topicMatches(m.subscriptionRootTopic, m.taskStartTopic)) {
      add('mqttConfig.taskStartTopic', `expected a topic matched by subscriptionRootTopic ${JSON.stringify(m.subscriptionRootTopic)}, got ${JSON.stringify(m.taskStartTopic)}`);
    }
    const ha = b.highAvailability;
    if (ha.enable) {
      if (ha.instanceId && (/[/+#\u0000]/.test(ha.instanceId) || ha.instanceId.startsWith('$'))) {
        add('highAvailability.instanceId', `expected one topic level (no / + # or NUL, not starting with $), got ${JSON.stringify(ha.instanceId)}`);
      }
      const g = checkPublishTopic(ha.group);
      if (!g.ok) add('highAvailability.group', `expected an MQTT topic prefix, got ${JSON.stringify(ha.group)}: ${g.reason}`);
    }
    if (m.reconnect.minDelayMs > m.reconnect.maxDelayMs) add('mqttConfig.reconnect.minDelayMs', `expected at most reconnect.maxDelayMs (${m.reconnect.maxDelayMs}), got ${m.reconnect.minDelayMs}`);

    if (eventGrid) {
      if (!m.azureEventGrid.clientId) add('mqttConfig.azureEventGrid.clientId', 'expected the Event Grid client session name, got an empty value');
      fileMustExist('mqttConfig.azureEventGrid.clientCertFile', m.azureEventGrid.clientCertFile, 'client certificate file');
      fileMustExist('mqttConfig.azureEventGrid.clientKeyFile', m.azureEventGrid.clientKeyFile, 'client key file');
      optionalFile('mqttConfig.azureEventGrid.caFile', m.azureEventGrid.caFile, 'CA certificate file');
      if (m.delivery.qos === 2) add('mqttConfig.delivery.qos', 'expected 0 or 1 in Azure Event Grid mode (Event Grid does not support QoS 2), got 2');
      if (m.availability.enable && m.availability.retain === true) {
        add('mqttConfig.availability.retain', 'expected false or empty in Azure Event Grid mode (Event Grid refuses retained will messages), got true');
      }
      if (m.keepaliveSeconds > 1160) add('mqttConfig.keepaliveSeconds', `expected at most 1160 in Azure Event Grid mode (Event Grid's keep-alive maximum), got ${m.keepaliveSeconds}`);
    } else if (m.tls.enable) {
      optionalFile('mqttConfig.tls.caFile', m.tls.caFile, 'CA certificate file');
      optionalFile('mqttConfig.tls.certFile', m.tls.certFile, 'client certificate file');
      optionalFile('mqttConfig.tls.keyFile', m.tls.keyFile, 'client key file');
      if (Boolean(m.tls.certFile) !== Boolean(m.tls.keyFile)) add('mqttConfig.tls', 'expected both certFile and keyFile, or neither');
    }
    const fwd = m.qlikSenseCloud.event.mqttForward;
    if (fwd.enable) {
      if (!fwd.broker.host) add('mqttConfig.qlikSenseCloud.event.mqttForward.broker.host', 'expected a host name, got an empty value');
      optionalFile('mqttConfig.qlikSenseCloud.event.mqttForward.broker.caFile', fwd.broker.caFile, 'CA certificate file');
      const r = checkTopicFilter(fwd.topic.subscriptionRoot);
      if (!r.ok) add('mqttConfig.qlikSenseCloud.event.mqttForward.topic.subscriptionRoot', `expected an MQTT topic filter: ${r.reason}`);
    }
  }

  if (b.udpServerConfig.enable) {
    placeholderScan('udpServerConfig', b.udpServerConfig);
    const u = b.udpServerConfig;
    if (u.sessionConnectionEvents.enable && u.portSessionConnectionEvents === u.portTaskFailure) {
      add('udpServerConfig.portSessionConnectionEvents', `expected a port other than portTaskFailure (${u.portTaskFailure})`);
    }
  }
  if (b.restServerConfig.enable) {
    placeholderScan('restServerConfig', b.restServerConfig);
    const t = b.restServerConfig.tls;
    if (t.enable) {
      fileMustExist('restServerConfig.tls.cert', t.cert, 'server certificate file');
      fileMustExist('restServerConfig.tls.key', t.key, 'server key file');
      optionalFile('restServerConfig.tls.ca', t.ca, 'CA certificate file');
    }
  }
  // QRS is in use when a host is set; an empty host means "no Sense connection" (features needing it stay off).
  if (b.configQRS.host) {
    placeholderScan('configQRS', b.configQRS);
    placeholderScan('cert', b.cert);
    if (b.configQRS.useSSL) {
      fileMustExist('cert.clientCert', b.cert.clientCert, 'Sense client certificate file');
      fileMustExist('cert.clientCertKey', b.cert.clientCertKey, 'Sense client key file');
      optionalFile('cert.clientCertCA', b.cert.clientCertCA, 'Sense root CA file');
    }
  }
  const lic = b.qlikSenseLicense.serverLicenseMonitor;
  if (lic.enable) {
    const r = parseSchedule(lic.frequency);
    if (!r.ok) add('qlikSenseLicense.serverLicenseMonitor.frequency', r.error);
  }
  if (b.serviceMonitor.enable) {
    placeholderScan('serviceMonitor', b.serviceMonitor.monitor);
    const r = parseSchedule(b.serviceMonitor.frequency);
    if (!r.ok) add('serviceMonitor.frequency', r.error);
  }
  if (b.qlikSenseCloud.enable) {
    placeholderScan('qlikSenseCloud', b.qlikSenseCloud);
    const t = b.qlikSenseCloud.event.mqtt.tenant;
    if (!t.tenantUrl) add('qlikSenseCloud.event.mqtt.tenant.tenantUrl', 'expected the tenant URL, got an empty value');
    if (!t.auth.jwt.token) add('qlikSenseCloud.event.mqtt.tenant.auth.jwt.token', 'expected an API key, got an empty value');
    optionalFile('qlikSenseCloud.event.mqtt.tenant.caFile', t.caFile, 'CA certificate file');
  }
  if (m.enable && m.qlikSenseCloud.event.mqttForward.enable && !b.qlikSenseCloud.event.mqtt.tenant.id) {
    add('qlikSenseCloud.event.mqtt.tenant.id', 'expected the tenant id whose events are forwarded, got an empty value');
  }
  // Direct Qlik Cloud tenants; the first one takes what it leaves empty from the single-tenant keys.
  const legacy = b.qlikSenseCloud.event.mqtt.tenant;
  const names = new Set<string>();
  b.qlikSenseCloud.tenants.forEach((t, i) => {
    const at = `qlikSenseCloud.tenants.${i}`;
    if (names.has(t.name)) add(`${at}.name`, `expected a name of its own, but "${t.name}" is used by an earlier tenant`);
    names.add(t.name);
    const url = t.url || (i === 0 ? legacy.tenantUrl : '');
    const key = t.apiKey || (i === 0 ? legacy.auth.jwt.token : '');
    if (t.poller && !url) add(`${at}.url`, 'expected the tenant URL (the poller reads its reloads API), got an empty value');
    if (t.poller && !key) add(`${at}.apiKey`, 'expected an API key (the poller reads the reloads API), got an empty value');
    if (t.webhookSecret && (t.webhookSecret.length < 32 || t.webhookSecret.length > 64)) add(`${at}.webhookSecret`, `expected 32-64 characters (Qlik Cloud's rule for webhook secrets), got ${t.webhookSecret.length}`);
    if (t.caFile) optionalFile(`${at}.caFile`, t.caFile, 'CA certificate file');
  });
  return issues;
}

function resolvePaths(b: ButlerConfig, dir: string): void {
  const r = (p: string) => (p ? path.resolve(dir, p) : p);
  const m = b.mqttConfig;
  m.tls.caFile = r(m.tls.caFile);
  m.tls.certFile = r(m.tls.certFile);
  m.tls.keyFile = r(m.tls.keyFile);
  m.azureEventGrid.clientCertFile = r(m.azureEventGrid.clientCertFile);
  m.azureEventGrid.clientKeyFile = r(m.azureEventGrid.clientKeyFile);
  m.azureEventGrid.caFile = r(m.azureEventGrid.caFile);
  m.delivery.outboxFile = r(m.delivery.outboxFile);
  m.qlikSenseCloud.event.mqttForward.broker.caFile = r(m.qlikSenseCloud.event.mqttForward.broker.caFile);
  b.restServerConfig.tls.cert = r(b.restServerConfig.tls.cert);
  b.restServerConfig.tls.key = r(b.restServerConfig.tls.key);
  b.restServerConfig.tls.ca = r(b.restServerConfig.tls.ca);
  b.cert.clientCert = r(b.cert.clientCert);
  b.cert.clientCertKey = r(b.cert.clientCertKey);
  b.cert.clientCertCA = r(b.cert.clientCertCA);
  b.logDirectory = r(b.logDirectory);
  // A program name is looked up on PATH; only a path is resolved like the other files.
  if (/[\\/]/.test(b.serviceMonitor.scCommand)) b.serviceMonitor.scCommand = r(b.serviceMonitor.scCommand);
  b.qlikSenseCloud.event.mqtt.tenant.caFile = r(b.qlikSenseCloud.event.mqtt.tenant.caFile);
  for (const t of b.qlikSenseCloud.tenants) t.caFile = r(t.caFile);
}

function collectSecrets(b: ButlerConfig): string[] {
  const m = b.mqttConfig;
  const fwd = m.qlikSenseCloud.event.mqttForward.broker;
  // A `user:password` pair too, so that its base64 form (a Basic credential) is masked whole.
  const pair = (user: string, password: string) => (user && password ? `${user}:${password}` : '');
  return [m.password, fwd.password, b.restServerConfig.apiToken, b.qlikSenseCloud.event.mqtt.tenant.auth.jwt.token, pair(m.username, m.password), pair(fwd.username, fwd.password), ...b.qlikSenseCloud.tenants.flatMap((t) => [t.apiKey, t.webhookSecret])].filter(
    (s) => s.length > 0,
  );
}

/** For the YAML document API users (docs generator). */
export type { Document };
