// The JavaScript build: src/ bundled by esbuild into dist/main.mjs (dependencies stay in
// node_modules, but for the one named below), plus the status page's static files. bin/butler-mqtt.js runs it when it is at least
// as new as the sources, so the package starts without compiling TypeScript at run time.
// Runs on `npm ci` / `npm install` (prepare, which also runs before `npm pack`) and `npm start`.
import { build } from 'esbuild';
import { cpSync, mkdirSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');

// Dependencies stay in node_modules and are loaded from there, except the config schema library:
// typebox is 709 small ES modules, and loading them one by one took about 230 ms of the start and
// 8-10 MB of resident memory; bundled, only what the code uses is in the build, as one module.
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const INTO_BUNDLE = new Set(['typebox']);
const external = Object.keys(pkg.dependencies).filter((d) => !INTO_BUNDLE.has(d));

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);
cpSync(path.join(root, 'src/http/status'), path.join(dist, 'status'), { recursive: true });
// The UDP receive thread is plain JavaScript loaded by URL beside the entry (src/sense/udp-source.ts),
// with the ring writer it imports.
cpSync(path.join(root, 'src/sense/udp-receiver-worker.js'), path.join(dist, 'udp-receiver-worker.js'));
cpSync(path.join(root, 'src/sense/udp-ring-writer.js'), path.join(dist, 'udp-ring-writer.js'));
await build({
  entryPoints: [path.join(root, 'src/main.ts')],
  outfile: path.join(dist, 'main.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external,
  sourcemap: true,
  legalComments: 'none',
  // V8 keeps a module's source text for as long as the module lives: without comments and indentation,
  // and in ASCII only (one non-ASCII character makes V8 store the whole text in two bytes per
  // character), the bundle's text takes about 40% of the memory. Names stay as written, so stack
  // traces still name the functions; dist/main.mjs.map maps their positions to the sources
  // (node --enable-source-maps).
  minifyWhitespace: true,
  charset: 'ascii',
  logLevel: 'warning',
});
// The entry's time stamp is what the bin compares with the sources: make it the newest file here.
const now = new Date();
utimesSync(path.join(dist, 'main.mjs'), now, now);
