// Generates docs/asyncapi.yaml from the message contract (src/contract/), with every topic at its
// default. `npm run docs:asyncapi` writes the file; a unit test regenerates it in memory and fails
// when the committed copy is stale.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { parseConfigText } from '../config/load.ts';
import { asyncApiDocument } from '../contract/asyncapi.ts';
import { packageVersion } from '../package-root.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ASYNCAPI_YAML = path.join(ROOT, 'docs/asyncapi.yaml');

/** The document for the default config, every channel listed. */
export function defaultAsyncApiDocument(): Record<string, unknown> {
  const defaults = parseConfigText('Butler: {}\n', 'defaults.yaml').butler;
  return asyncApiDocument(defaults, { version: packageVersion(), documentedDefaults: true });
}

export function asyncApiYaml(): string {
  const header = '# Generated from src/contract/ by `npm run docs:asyncapi`; do not edit by hand.\n';
  return header + stringify(defaultAsyncApiDocument(), { lineWidth: 0, aliasDuplicateObjects: false });
}

export function writeAsyncApiDoc(): void {
  writeFileSync(ASYNCAPI_YAML, asyncApiYaml());
  process.stdout.write(`wrote ${path.relative(process.cwd(), ASYNCAPI_YAML)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) writeAsyncApiDoc();
