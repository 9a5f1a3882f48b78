// Runs every test file with Node's test runner (Node 20's runner does not expand globs itself).
// Usage: node scripts/run-tests.mjs [dir-or-file …]   (default: test/unit test/integration test/e2e)
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

function testFiles(target) {
  if (statSync(target).isFile()) return [target];
  return readdirSync(target, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? testFiles(path.join(target, e.name)) : e.name.endsWith('.test.ts') ? [path.join(target, e.name)] : []))
    .sort();
}

const targets = process.argv.slice(2);
const files = (targets.length > 0 ? targets : ['test/unit', 'test/integration', 'test/e2e']).flatMap(testFiles);
// --test-force-exit: a test file whose tests have all finished ends even when a handle it forgot (a
// socket, a timer) would keep its process alive; one such leak must not hang the whole run.
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-force-exit', '--test-reporter=spec', ...files], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
