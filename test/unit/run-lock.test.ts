// The store's run lock: one running bridge per store file, released however the holder ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { RunLock, StoreInUseError } from '../../src/store/run-lock.ts';
import { collectLines, tempDir } from '../support/bridge.ts';
import { waitFor } from '../support/wait.ts';

test('a second holder is refused while the first holds the lock; released, it can be taken again', () => {
  const tmp = tempDir('bm-run-lock-');
  const file = path.join(tmp.dir, 'data', 'outbox.sqlite');
  try {
    const first = RunLock.acquire(file);
    assert.ok(first.held);
    assert.throws(() => RunLock.acquire(file), (err: Error) => err instanceof StoreInUseError && /another butler-mqtt is running on the store/.test(err.message));
    first.release();
    assert.equal(first.held, false);
    const second = RunLock.acquire(file);
    second.release();
    // Another store in the same directory has its own lock.
    RunLock.acquire(path.join(tmp.dir, 'data', 'other.sqlite')).release();
  } finally {
    tmp.cleanup();
  }
});

test('a holder killed with SIGKILL leaves no stale lock', async () => {
  const tmp = tempDir('bm-run-lock-');
  const file = path.join(tmp.dir, 'outbox.sqlite');
  const source = `import { RunLock } from ${JSON.stringify(path.resolve('src/store/run-lock.ts'))}; RunLock.acquire(${JSON.stringify(file)}); console.log('held'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', source], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = collectLines(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitFor(() => lines.includes('held') || child.exitCode !== null, 15_000, 'the child to take the lock');
    assert.ok(lines.includes('held'), lines.join('\n'));
    assert.throws(() => RunLock.acquire(file), StoreInUseError);
    child.kill('SIGKILL');
    await exited;
    RunLock.acquire(file).release();
  } finally {
    child.kill('SIGKILL');
    tmp.cleanup();
  }
});
