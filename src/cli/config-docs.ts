// Generates docs/configuration.md and config/butler-full.yaml from the config schema, so the
// reference can never drift from what the loader accepts. `npm run docs:config` writes both files;
// a unit test regenerates them in memory and fails when the committed copies are stale.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import type { TSchema } from 'typebox';
import { ButlerSchema } from '../config/schema.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CONFIGURATION_MD = path.join(ROOT, 'docs/configuration.md');
export const FULL_YAML = path.join(ROOT, 'config/butler-full.yaml');

interface Node {
  type?: string;
  properties?: Record<string, TSchema>;
  items?: TSchema;
  default?: unknown;
  description?: string;
  expected?: string;
  added?: boolean;
  secret?: boolean;
}

/** One key of the schema, flattened. */
export interface KeyDoc {
  /** Dotted path from Butler, `[]` for list items: Butler.serviceMonitor.monitor[].host */
  path: string;
  /** The key's own name. */
  name: string;
  depth: number;
  kind: 'section' | 'list' | 'value';
  type: string;
  default: unknown;
  description: string;
  /** Added by butler-mqtt (itself or a section it is in). */
  added: boolean;
  secret: boolean;
}

function typeText(n: Node): string {
  if (n.expected) return n.expected;
  switch (n.type) {
    case 'string':
      return 'a string';
    case 'integer':
      return 'an integer';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping';
    default:
      return 'a value';
  }
}

/** Every key under Butler in schema order, sections before their keys. */
export function schemaKeys(): KeyDoc[] {
  const out: KeyDoc[] = [];
  const walk = (schema: TSchema, prefix: string, depth: number, inheritedAdded: boolean) => {
    const n = schema as Node;
    for (const [name, child] of Object.entries(n.properties ?? {})) {
      const c = child as Node;
      const p = `${prefix}.${name}`;
      const added = inheritedAdded || c.added === true;
      const base = { path: p, name, depth, default: c.default, description: c.description ?? '', added, secret: c.secret === true };
      if (c.type === 'object' && c.properties) {
        out.push({ ...base, kind: 'section', type: 'a mapping' });
        walk(child, p, depth + 1, added);
      } else if (c.type === 'array' && (c.items as Node | undefined)?.type === 'object') {
        out.push({ ...base, kind: 'list', type: typeText(c) });
        walk(c.items as TSchema, `${p}[]`, depth + 1, added);
      } else {
        out.push({ ...base, kind: 'value', type: typeText(c) });
      }
    }
  };
  walk(ButlerSchema, 'Butler', 1, false);
  return out;
}

// ---------------------------------------------------------------------------------------------
// docs/configuration.md

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function defaultText(k: KeyDoc): string {
  const v = k.default;
  if (v === undefined) return '';
  if (v === null || v === '') return '*(empty)*';
  if (typeof v === 'string') return `\`${cell(v)}\``;
  return `\`${cell(JSON.stringify(v))}\``;
}

function markers(k: KeyDoc): string {
  const m: string[] = [];
  if (k.added) m.push('**added**');
  if (k.secret) m.push('**secret**');
  return m.length ? ` ${m.join(' ')}` : '';
}

export function configurationMarkdown(): string {
  const keys = schemaKeys();
  const lines: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`. Do not edit by hand: a test fails when this file is stale. -->',
    '',
    'butler-mqtt reads a Butler config file: YAML with a top-level `Butler:` key. This page lists every key it reads,',
    'with its type, default and meaning. `config/butler-full.yaml` holds the same keys with their defaults, commented.',
    '',
    '- Keys of Butler keep Butler\'s names and template defaults; a real Butler file loads unchanged.',
    '- **added** marks a key that butler-mqtt adds (not in Butler). Every added key is optional and has a default.',
    '- **secret** marks a value that is never shown: it is masked in every log line, in `check-config` output and on',
    '  the status page.',
    '- A key written with no value (`ca:`) means empty and takes the default. Unknown keys and the Butler sections',
    '  butler-mqtt does not use (email, Slack, InfluxDB, …) are accepted and ignored; one info line at start lists them.',
    '- Relative file paths (certificates, the outbox file, the log directory) resolve against the config file\'s directory.',
    '- Every problem in the file is reported at start-up at once, with its YAML path and line; nothing starts (exit code 2).',
    '  Check a file without starting anything: `butler-mqtt check-config --config <file>`.',
    '',
  ];
  // One table per section; a section's own keys first, sub-sections follow as their own tables.
  const sections: { key: KeyDoc | null; path: string; rows: KeyDoc[] }[] = [{ key: null, path: 'Butler', rows: [] }];
  const byPath = new Map<string, { key: KeyDoc | null; path: string; rows: KeyDoc[] }>([['Butler', sections[0]!]]);
  for (const k of keys) {
    const parentPath = k.path.slice(0, k.path.length - k.name.length - 1).replace(/\[\]$/, '');
    const parent = byPath.get(parentPath);
    if (k.kind === 'section') {
      const s = { key: k, path: k.path, rows: [] as KeyDoc[] };
      sections.push(s);
      byPath.set(k.path, s);
    } else {
      parent?.rows.push(k);
      if (k.kind === 'list') byPath.set(k.path, parent!);
    }
  }
  for (const s of sections) {
    if (s.rows.length === 0 && s.key === null) continue;
    const title = s.key ? `\`${s.path}\`` : 'Top level (`Butler`)';
    lines.push(`## ${title}`, '');
    if (s.key) {
      const text = [s.key.description, s.key.added && !isAddedBecauseOfParent(s.key, keys) ? 'Added by butler-mqtt.' : ''].filter(Boolean).join(' ');
      if (text) lines.push(text, '');
    }
    if (s.rows.length === 0) {
      lines.push('Only sub-sections, below.', '');
      continue;
    }
    lines.push('| Key | Type | Default | Description |', '|---|---|---|---|');
    for (const k of s.rows) {
      const name = k.path.slice(s.path.length + 1);
      lines.push(`| \`${cell(name)}\`${markers(k)} | ${cell(k.type)} | ${defaultText(k)} | ${cell(k.description)} |`);
    }
    lines.push('');
  }
  return `${lines.join('\n').trimEnd()}\n`;
}

function isAddedBecauseOfParent(k: KeyDoc, keys: KeyDoc[]): boolean {
  const parentPath = k.path.slice(0, k.path.lastIndexOf('.'));
  return keys.some((p) => p.path === parentPath && p.added);
}

// ---------------------------------------------------------------------------------------------
// config/butler-full.yaml

function yamlScalar(v: unknown): string {
  if (v === undefined || v === null) return '';
  return stringify(v, { lineWidth: 0 }).trimEnd();
}

export function fullConfigYaml(): string {
  const keys = schemaKeys();
  const indent = (depth: number) => '    '.repeat(depth);
  const lines: string[] = [
    '# butler-mqtt — every configuration key with its default value.',
    '#',
    '# Generated from src/config/schema.ts by `npm run docs:config`; do not edit by hand (a test fails when it is',
    '# stale). This file loads as it is, but with every feature off it does nothing useful: copy the keys you need',
    '# into your own config. Meanings in more detail: docs/configuration.md.',
    '#',
    '# [added]  a key butler-mqtt adds (not in Butler); optional.',
    '# [secret] never shown in logs, check-config output or the status page.',
    '---',
    'Butler:',
  ];
  for (const k of keys) {
    // List items are described in the comment of their list.
    if (k.path.includes('[]')) continue;
    const pad = indent(k.depth);
    const tags = [k.added && !isAddedBecauseOfParent(k, keys) ? '[added]' : '', k.secret ? '[secret]' : ''].filter(Boolean).join(' ');
    const comment = [k.description, k.kind === 'value' ? `(${k.type})` : '', tags].filter(Boolean).join(' ');
    if (k.kind === 'section' && k.depth === 1) lines.push('');
    if (comment) lines.push(`${pad}# ${comment}`);
    if (k.kind === 'section') {
      lines.push(`${pad}${k.name}:`);
    } else if (k.kind === 'list') {
      const itemKeys = keys.filter((x) => x.path.startsWith(`${k.path}[].`) && x.depth === k.depth + 1);
      lines.push(`${pad}# Each item: ${itemKeys.map((x) => `${x.name} (${x.type})`).join(', ')}.`);
      lines.push(`${pad}${k.name}: ${yamlScalar(k.default ?? [])}`);
    } else {
      const value = yamlScalar(k.default);
      lines.push(value === '' ? `${pad}${k.name}:` : `${pad}${k.name}: ${value}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Writes both files (the `docs:config` script). */
export function writeConfigDocs(): void {
  writeFileSync(CONFIGURATION_MD, configurationMarkdown());
  writeFileSync(FULL_YAML, fullConfigYaml());
  process.stdout.write(`wrote ${path.relative(process.cwd(), CONFIGURATION_MD)} and ${path.relative(process.cwd(), FULL_YAML)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) writeConfigDocs();
