// Builds the C UDP receive thread (native/udp-reader.c) into native/build/udp-reader.node, on Linux, with
// the C compiler (`$CC`, else `cc`) and the Node-API headers of the Node.js that runs this (the
// `npm_config_nodedir` folder, the folder beside the node binary, or /usr/include/node). Runs on
// `npm ci` / `npm install` (the install script) and as `npm run build:native`.
//
// Never fails the install: where the compiler or the headers are missing (or not on Linux) it says so
// in one line, and the bridge reads its UDP sockets with its JavaScript receive thread instead
// (udpServerConfig.receiveThread).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'native', 'udp-reader.c');
const outDir = path.join(root, 'native', 'build');
const out = path.join(outDir, 'udp-reader.node');

function skip(reason) {
  console.log(`butler-mqtt: native UDP receive thread not built (${reason}); the JavaScript receive thread will be used`);
  process.exit(0);
}

if (process.platform !== 'linux') skip(`it is for Linux, this is ${process.platform}`);
if (!existsSync(source)) skip('native/udp-reader.c is missing');

const candidates = [
  process.env.npm_config_nodedir ? path.join(process.env.npm_config_nodedir, 'include', 'node') : null,
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter((d) => d !== null);
const headers = candidates.find((d) => existsSync(path.join(d, 'node_api.h')));
if (!headers) skip(`no Node-API headers (node_api.h) in ${candidates.join(', ')}`);

const cc = process.env.CC || 'cc';
mkdirSync(outDir, { recursive: true });
const temporary = `${out}.${process.pid}.tmp`;
const args = ['-O2', '-Wall', '-shared', '-fPIC', '-fvisibility=hidden', `-I${headers}`, '-o', temporary, source, '-lpthread'];
const run = spawnSync(cc, args, { encoding: 'utf8' });
if (run.error) {
  rmSync(temporary, { force: true });
  skip(`${cc}: ${run.error.code === 'ENOENT' ? 'no C compiler' : run.error.message}`);
}
if (run.status !== 0) {
  rmSync(temporary, { force: true });
  process.stderr.write(run.stderr);
  skip(`${cc} exited with ${run.status}`);
}
renameSync(temporary, out);
console.log(`butler-mqtt: native UDP receive thread built (${path.relative(root, out)}, headers ${headers})`);
