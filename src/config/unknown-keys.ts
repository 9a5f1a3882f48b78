// Keys in the config file that nothing reads. Inside the sections butler-mqtt reads, a key that is a near
// miss of one it knows (`enabled` for `enable`, `apiTokn` for `apiToken`) is an error with a "did you
// mean": a misspelt switch silently keeps its default, which for a filter or a token means "off". Keys
// Butler itself has there (any version) are accepted; anything else is a warning. Pure: YAML nodes in,
// findings out.
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import type { TSchema } from 'typebox';

export interface KeyFinding {
  /** Dotted YAML path of the key, e.g. Butler.startTaskFilter.enabled */
  path: string;
  line?: number;
  message: string;
}

export interface UnknownKeys {
  /** Near misses of a key butler-mqtt reads. */
  errors: KeyFinding[];
  /** Other unknown keys inside read sections (a newer Butler's key, or a typo of nothing we know). */
  warnings: KeyFinding[];
  /** Top-level Butler sections butler-mqtt does not read. */
  ignoredSections: string[];
}

/**
 * Keys Butler has (in some version of its production template) inside the sections butler-mqtt reads,
 * that butler-mqtt does not use. Keyed by dotted schema path, list items as `[]`; '' is the Butler level.
 */
export const BUTLER_KEYS_NOT_READ: Readonly<Record<string, readonly string[]>> = {
  '': [
    'anonTelemetry', 'systemInfo', 'configVisualisation', 'heartbeat', 'dockerHealthCheck', 'uptimeMonitor', 'thirdPartyToolsCredentials',
    'influxDb', 'scriptLog', 'qlikSenseUrls', 'genericUrls', 'qlikSenseVersion', 'teamsNotification', 'slackNotification', 'emailNotification',
    'incidentTool', 'webhookNotification', 'scheduler', 'keyValueStore', 'fileCopyApprovedDirectories', 'fileMoveApprovedDirectories',
    'fileDeleteApprovedDirectories', 'restServerApiDocGenerate', 'restServerEndpointsConfig', 'configEngine', 'configDirectories',
    'configSchedule', 'configVisTask', 'serverMonitor', 'newRelic', 'telemetry',
  ],
  udpServerConfig: ['queueMetrics'],
  restServerConfig: ['backgroundServerPort'],
  restServerEndpointsEnable: [
    'apiListEnabledEndpoints', 'apiListEnbledEndpoints', 'base62ToBase16', 'base16ToBase62', 'butlerping', 'createDir', 'createDirQVD', 'fileDelete',
    'fileMove', 'fileCopy', 'keyValueStore', 'newRelic', 'scheduler', 'senseAppReload', 'senseAppDump', 'senseListApps', 'senseStartTask',
    'slackPostMessage', 'senseQVDList',
  ],
  configQRS: ['authentication'],
  'qlikSenseLicense.serverLicenseMonitor.destination': ['influxDb', 'webhook'],
  qlikSenseLicense: ['licenseMonitor', 'licenseRelease'],
  'serviceMonitor.alertDestination': ['influxDb', 'newRelic', 'email', 'teams', 'slack', 'webhook'],
  'qlikSenseCloud.event.mqtt.tenant': ['authType', 'qlikSenseUrls', 'comment', 'alert'],
};

/** Lower case, separators removed: `api_token`, `API-Token` and `apiToken` are one word. */
function normalise(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, '');
}

/**
 * Damerau–Levenshtein distance (insertions, deletions, substitutions and transpositions of adjacent
 * characters, with no restriction on editing a substring twice, so k typing mistakes are at most k),
 * or limit + 1 when the lengths alone rule it out.
 */
export function editDistance(a: string, b: string, limit = 2): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const INF = a.length + b.length;
  const lastRow = new Map<string, number>();
  // d[i + 1][j + 1] is the distance between the first i characters of a and the first j of b.
  const d: number[][] = Array.from({ length: a.length + 2 }, () => new Array<number>(b.length + 2).fill(0));
  (d[0] as number[])[0] = INF;
  for (let i = 0; i <= a.length; i++) {
    (d[i + 1] as number[])[0] = INF;
    (d[i + 1] as number[])[1] = i;
  }
  for (let j = 0; j <= b.length; j++) {
    (d[0] as number[])[j + 1] = INF;
    (d[1] as number[])[j + 1] = j;
  }
  for (let i = 1; i <= a.length; i++) {
    let lastMatchCol = 0;
    for (let j = 1; j <= b.length; j++) {
      const i1 = lastRow.get(b[j - 1] as string) ?? 0;
      const j1 = lastMatchCol;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      if (cost === 0) lastMatchCol = j;
      const at = (r: number, c: number) => (d[r] as number[])[c] as number;
      (d[i + 1] as number[])[j + 1] = Math.min(at(i, j) + cost, at(i + 1, j) + 1, at(i, j + 1) + 1, at(i1, j1) + (i - i1 - 1) + 1 + (j - j1 - 1));
    }
    lastRow.set(a[i - 1] as string, i);
  }
  return (d[a.length + 1] as number[])[b.length + 1] as number;
}

/**
 * The known key `key` is probably a misspelling of, or undefined: same word ignoring case and `-`/`_`,
 * singular/plural, or at most two edits (one for keys under five letters, where two edits reach
 * unrelated words: `ca` and `id`).
 */
export function nearMiss(key: string, known: readonly string[]): string | undefined {
  const k = normalise(key);
  if (k === '') return undefined;
  let best: { key: string; d: number } | undefined;
  for (const candidate of known) {
    const c = normalise(candidate);
    if (k === c || k === `${c}s` || c === `${k}s` || k === `${c}es` || c === `${k}es`) return candidate;
    const limit = c.length < 5 ? 1 : 2;
    const d = editDistance(k, c, limit);
    if (d <= limit && (!best || d < best.d)) best = { key: candidate, d };
  }
  return best?.key;
}

interface SchemaShape {
  type?: string;
  properties?: Record<string, TSchema>;
  items?: TSchema;
}

function dotted(segments: (string | number)[]): string {
  return segments.reduce<string>((acc, s) => (typeof s === 'number' ? `${acc}[${s}]` : `${acc}.${s}`), '').slice(1);
}

/** Finds unknown keys under `Butler` in a parsed document, checked against the schema of what is read. */
export function findUnknownKeys(doc: Document, lineCounter: LineCounter, butlerSchema: TSchema): UnknownKeys {
  const out: UnknownKeys = { errors: [], warnings: [], ignoredSections: [] };
  const resolve = (node: unknown): unknown => (isAlias(node) ? node.resolve(doc) : node);
  const root = resolve(doc.contents);
  if (!isMap(root)) return out;
  const butlerPair = root.items.find((p) => isScalar(p.key) && p.key.value === 'Butler');
  const butler = resolve(butlerPair?.value);
  if (!isMap(butler)) return out;
  const lineOf = (node: unknown) => {
    const range = (node as Node | null)?.range;
    return range ? lineCounter.linePos(range[0]).line : undefined;
  };

  const walk = (schema: SchemaShape, node: unknown, segments: (string | number)[], schemaPath: string) => {
    node = resolve(node);
    if (schema.type === 'object' && schema.properties && isMap(node)) {
      const props = schema.properties;
      const readKeys = Object.keys(props);
      const butlerKeys = BUTLER_KEYS_NOT_READ[schemaPath] ?? [];
      for (const pair of node.items) {
        const keyNode = pair.key;
        const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
        if (key === undefined || key === '<<') continue;
        const child = props[key];
        if (child !== undefined) {
          walk(child as SchemaShape, pair.value, [...segments, key], schemaPath ? `${schemaPath}.${key}` : key);
          continue;
        }
        if (butlerKeys.includes(key)) {
          if (schemaPath === '') out.ignoredSections.push(key);
          continue;
        }
        const at = dotted(['Butler', ...segments, key]);
        const line = lineOf(keyNode);
        const meant = nearMiss(key, readKeys);
        if (meant !== undefined) {
          out.errors.push({ path: at, line, message: `unknown key ${JSON.stringify(key)}: did you mean ${JSON.stringify(meant)}? (as written it is ignored and ${JSON.stringify(meant)} keeps its default)` });
        } else if (schemaPath === '') {
          // A Butler section of a version not listed above: not ours to judge.
          out.ignoredSections.push(key);
        } else {
          out.warnings.push({ path: at, line, message: `unknown key ${JSON.stringify(key)} is ignored (neither a Butler nor a butler-mqtt key here)` });
        }
      }
    } else if (schema.type === 'array' && schema.items && isSeq(node)) {
      node.items.forEach((item, i) => walk(schema.items as SchemaShape, item, [...segments, i], `${schemaPath}[]`));
    }
  };
  walk(butlerSchema as SchemaShape, butler, [], '');
  return out;
}
