// docs/configuration.md and config/butler-full.yaml are generated from the schema: they must be
// current (regenerated in memory and compared), complete, and the YAML must load as a config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIGURATION_MD, FULL_YAML, configurationMarkdown, fullConfigYaml, schemaKeys } from '../../src/cli/config-docs.ts';
import { parseConfigText } from '../../src/config/load.ts';

const STALE = 'is stale: run `npm run docs:config` and commit the result';

test('docs/configuration.md is what the schema generates', () => {
  assert.equal(readFileSync(CONFIGURATION_MD, 'utf8'), configurationMarkdown(), `docs/configuration.md ${STALE}`);
});

test('config/butler-full.yaml is what the schema generates', () => {
  assert.equal(readFileSync(FULL_YAML, 'utf8'), fullConfigYaml(), `config/butler-full.yaml ${STALE}`);
});

test('config/butler-full.yaml loads, and every value in it is the default the loader applies', () => {
  const text = readFileSync(FULL_YAML, 'utf8');
  const fromFile = parseConfigText(text, '/etc/butler-mqtt/butler-full.yaml').butler as unknown as Record<string, unknown>;
  const fromNothing = parseConfigText('Butler: {}\n', '/etc/butler-mqtt/empty.yaml').butler as unknown as Record<string, unknown>;
  assert.deepEqual(fromFile, fromNothing);
});

test('the reference lists hand-picked keys with their type, default and markers', () => {
  const md = configurationMarkdown();
  // Butler keys, with Butler's defaults.
  assert.ok(md.includes('| `brokerPort` | an integer 1-65535 | `1883` | Main broker port. |'));
  assert.ok(md.includes('| `taskFailureTopic` | an MQTT topic | `qliksense/task_failure` | Failed reload: task name. |'));
  assert.ok(md.includes('| `portTaskFailure` | an integer 1-65535 | `9998` | Port for reload task events. |'));
  // Added keys are marked, secrets too.
  assert.ok(md.includes('| `password` **added** **secret** | a string | *(empty)* | Broker password. |'));
  assert.ok(md.includes('| `apiToken` **added** **secret** |'));
  assert.ok(md.includes('| `token` **secret** | a string | *(empty)* | API key (JWT). |'));
  assert.ok(md.includes('| `logFileCount` **added** | an integer 0-1000 | `5` |'));
  // List items are documented with their item keys.
  assert.ok(md.includes('| `monitor[].host` | a host name |'));
  assert.ok(md.includes('## `Butler.mqttConfig.delivery`'));
});

test('every key of the schema appears in both files', () => {
  const md = configurationMarkdown();
  const yaml = fullConfigYaml();
  const keys = schemaKeys();
  assert.ok(keys.length > 150, `expected well over 150 keys, got ${keys.length}`);
  const sections = keys.filter((k) => k.kind === 'section').map((k) => k.path);
  for (const k of keys) {
    if (k.kind === 'section') assert.ok(md.includes(`## \`${k.path}\``), `section ${k.path} in the markdown`);
    else {
      // A key is a row of the table of its nearest section, named relative to it.
      const section = sections.filter((p) => k.path.startsWith(`${p}.`)).sort((a, b) => b.length - a.length)[0] ?? 'Butler';
      const table = md.slice(md.indexOf(section === 'Butler' ? '## Top level' : `## \`${section}\``)).split('\n## ')[0] ?? '';
      assert.ok(table.includes(`| \`${k.path.slice(section.length + 1)}\``), `key ${k.path} in the table of ${section}`);
    }
    if (!k.path.includes('[]')) assert.ok(new RegExp(`^ +${k.name}:`, 'm').test(yaml), `key ${k.path} in the YAML`);
  }
});
