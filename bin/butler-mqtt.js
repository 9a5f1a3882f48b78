#!/usr/bin/env node
// The butler-mqtt command. Runs the JavaScript build (dist/main.mjs, made by scripts/build.mjs when the
// package is installed or packed) when it is at least as new as every source file; in a checkout whose
// sources changed since the last build, runs the TypeScript sources through tsx's loader instead.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import v8 from 'node:v8';

// Before any module is loaded: V8's young generation grows slowly until the bridge has work
// (src/startup-heap.ts).
v8.setFlagsFromString('--semi-space-growth-factor=1');

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const built = path.join(root, 'dist', 'main.mjs');
const sources = path.join(root, 'src');

function newestBelow(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestBelow(p) : statSync(p).mtimeMs);
  }
  return newest;
}

const useBuild = existsSync(built) && (!existsSync(sources) || newestBelow(sources) <= statSync(built).mtimeMs);
if (useBuild) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(sources, 'main.ts')).href);
}
