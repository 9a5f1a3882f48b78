// bin/butler-mqtt.js picks what to run: the JavaScript build when it is at least as new as every
// source file, otherwise the TypeScript sources through tsx. Checked on a copy of the bin in a folder
// laid out like the package, with stand-in entries that print which one ran.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, tempDir } from '../support/bridge.ts';

const tmp = tempDir('bm-bin-');
after(() => tmp.cleanup());

const root = tmp.dir;
mkdirSync(path.join(root, 'bin'));
mkdirSync(path.join(root, 'dist'));
mkdirSync(path.join(root, 'src', 'http'), { recursive: true });
copyFileSync(path.join(REPO_ROOT, 'bin/butler-mqtt.js'), path.join(root, 'bin/butler-mqtt.js'));
writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'butler-mqtt', type: 'module' }));
symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');
const built = path.join(root, 'dist/main.mjs');
const source = path.join(root, 'src/main.ts');
const nested = path.join(root, 'src/http/server.ts');
writeFileSync(built, "console.log('build', JSON.stringify(process.argv.slice(2)));\n");
// Type annotations: only the TypeScript loader can run this file.
writeFileSync(source, "const which: string = 'sources';\nconsole.log(which, JSON.stringify(process.argv.slice(2)));\n");
writeFileSync(nested, 'export {};\n');

const runBin = () => execFileSync(process.execPath, [path.join(root, 'bin/butler-mqtt.js'), 'run', '--config', 'x.yaml'], { encoding: 'utf8' }).trim();
const at = (file: string, seconds: number) => utimesSync(file, seconds, seconds);
const T = 1_900_000_000;

test('a build newer than every source runs, with the arguments passed on', () => {
  at(source, T);
  at(nested, T);
  at(built, T + 10);
  assert.equal(runBin(), 'build ["run","--config","x.yaml"]');
});

test('a source file changed after the build (even a nested one): the sources run through tsx', () => {
  at(built, T + 10);
  at(nested, T + 20);
  assert.equal(runBin(), 'sources ["run","--config","x.yaml"]');
});

test('no build: the sources run', () => {
  rmSync(built);
  assert.equal(runBin(), 'sources ["run","--config","x.yaml"]');
  writeFileSync(built, "console.log('build', JSON.stringify(process.argv.slice(2)));\n");
});

test('no sources (the published package): the build runs whatever its time stamp', () => {
  at(built, T - 1000);
  rmSync(path.join(root, 'src'), { recursive: true });
  assert.equal(runBin(), 'build ["run","--config","x.yaml"]');
});
