// The rules that hold the code together, run with the tests: the TypeScript compiler in strict mode
// over sources, tests and benchmarks, and the layer rules of .dependency-cruiser.cjs (no import cycles;
// imports point down the layers, as docs/architecture.md draws them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../support/bridge.ts';

function run(bin: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(process.execPath, [path.join(REPO_ROOT, 'node_modules', bin), ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

test('tsc --noEmit: no type errors', () => {
  const r = run('typescript/bin/tsc', ['--noEmit', '-p', 'tsconfig.json']);
  assert.equal(r.status, 0, r.output);
});

test('dependency-cruiser: no import cycles and no import against the layer rules', () => {
  const r = run('dependency-cruiser/bin/dependency-cruise.mjs', ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err']);
  assert.equal(r.status, 0, r.output);
});
