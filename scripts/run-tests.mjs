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
// Two test files at a time: most of a file's time is spent waiting on brokers, sockets and child
// processes, so two of them share the two cores of a CI machine well (the suite takes about 60% of the
// time it takes one file at a time). No --test-force-exit: on Node.js 22 and 24 it ends a file's
// process before the runner has reported all of its tests. A file that leaves a handle open therefore
// does not end; the watchdog below ends such a run with a clear line instead of letting it hang.
// The runner and everything it starts (test files, brokers, bridges) form one process group, so the
// watchdog and a Ctrl-C reach all of them.
const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-reporter=spec', ...files], { stdio: 'inherit', detached: true });
const signalAll = (signal) => {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group has ended already
  }
};
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => signalAll(signal));
const limitMinutes = Number(process.env.TEST_RUN_LIMIT_MINUTES ?? 15);
const watchdog = setTimeout(() => {
  console.error(`\ntest run stopped after ${limitMinutes} minutes: a test file did not end (a socket, timer or child process left open?)`);
  signalAll('SIGKILL');
}, limitMinutes * 60_000);
watchdog.unref();
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
