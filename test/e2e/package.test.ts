// The published package works on its own: `npm pack`, `npm install <tarball>` into an empty folder
// (dependencies from the registry, install scripts run), then `npx butler-mqtt` runs --version,
// check-config (shipped config and ours) and `run` with the status page, and stops on SIGTERM.
//
// better-sqlite3's install script first looks for a prebuilt binary (prebuild-install: a user online
// downloads one from the project's releases) and builds from source only when there is none. This
// machine cannot download, so the test hands prebuild-install the binary the checkout's `npm ci` just
// built from the same pinned better-sqlite3 version against the same Node (its local-prebuilds folder):
// the install script, the unpacking and prebuild-install's own load check all run, and the source build
// itself is what `npm ci` already proved on this Node. Without the reuse (another version, another Node
// ABI) prebuild-install finds nothing and the install builds from source as before, a minute slower;
// the test prints which of the two happened.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { REPO_ROOT, tempDir } from '../support/bridge.ts';
import { freeUdpPort } from '../support/udp.ts';
import { freePort, waitFor } from '../support/wait.ts';

const run = promisify(execFile);
const tmp = tempDir('bm-package-');
after(() => tmp.cleanup());

/**
 * Starts the installed bridge in its own process group and checks it serves: started, /health,
 * the status page and its script, ready. `closed` resolves when every process of it has exited.
 */
async function startInstalled(command: string, args: string[], cwd: string, httpPort: number): Promise<{ pid: number; output(): string; closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  // 'close' waits for the pipes, which the bridge holds even when npx has gone.
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  const pid = child.pid!;
  try {
    await waitFor(() => output.includes('butler-mqtt started') || child.exitCode !== null, 30_000, 'the installed bridge to start');
    assert.ok(output.includes('butler-mqtt started'), output);
    const base = `http://127.0.0.1:${httpPort}`;
    const health = await request(`${base}/health`);
    assert.equal(health.statusCode, 200);
    assert.equal(await health.body.text(), '{"status":"ok"}');
    const page = await request(`${base}/`);
    assert.equal(page.statusCode, 200);
    assert.match(await page.body.text(), /<title>butler-mqtt status<\/title>/);
    const script = await request(`${base}/status/status.js`);
    assert.equal(script.statusCode, 200);
    assert.match(await script.body.text(), /new EventSource\('\/status\/events'\)/);
    await waitFor(async () => ((await (await request(`${base}/ready`)).body.json()) as { ready: boolean }).ready, 10_000, 'ready');
  } catch (err) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone (it exited on its own): the assertion above says why
    }
    throw err;
  }
  return { pid, output: () => output, closed };
}

/** The promise, or a failure after `ms` — with the process group killed, so nothing is left running. */
async function withDeadline<T>(p: Promise<T>, ms: number, group: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not stopped within ${ms} ms`)), ms)))]);
  } catch (err) {
    try {
      process.kill(-group, 'SIGKILL');
    } catch {
      // already gone
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
// better-sqlite3 compiles against the headers of the Node running this test (its install prefix, e.g. /usr
// for /usr/bin/node), not a different Node's; npm itself must not try a download.
const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? path.dirname(path.dirname(process.execPath)), npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

/**
 * The checkout's better-sqlite3 binary as the prebuild prebuild-install looks for: a .tar.gz holding
 * build/Release/better_sqlite3.node, named by version, Node ABI, platform and architecture (its default
 * name template, glibc Linux). Returns the folder to pass as npm_config_better_sqlite3_local_prebuilds.
 */
async function localPrebuild(dir: string): Promise<string> {
  const moduleDir = path.join(REPO_ROOT, 'node_modules/better-sqlite3');
  const { version } = JSON.parse(readFileSync(path.join(moduleDir, 'package.json'), 'utf8')) as { version: string };
  const folder = path.join(dir, 'prebuilds');
  mkdirSync(folder);
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  await run('tar', ['-czf', path.join(folder, name), '-C', moduleDir, 'build/Release/better_sqlite3.node']);
  return folder;
}

test('npm pack → npm install in an empty folder → npx butler-mqtt --version, check-config, run', { timeout: 240_000 }, async () => {
  const started = Date.now();
  const dest = path.join(tmp.dir, 'dest');
  const app = path.join(tmp.dir, 'app');
  mkdirSync(dest);
  mkdirSync(app);

  const packed = await run('npm', ['pack', '--json', '--pack-destination', dest], { cwd: REPO_ROOT, env });
  const info = (JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[])[0]!;
  const files = info.files.map((f) => f.path);
  for (const f of ['bin/butler-mqtt.js', 'dist/main.mjs', 'dist/status/index.html', 'dist/status/status.js', 'dist/status/status.css', 'config/butler-mqtt.yaml', 'config/butler-full.yaml', 'docs/operations.md', 'docs/configuration.md', 'docs/messages.md', 'docs/connect-to-sense.md', 'docs/migrate-from-butler.md', 'packaging/butler-mqtt.service', 'packaging/windows/install-service.ps1', 'README.md', 'package.json', 'native/udp-reader.c', 'scripts/build-native.mjs']) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  assert.ok(!files.some((f) => f.startsWith('native/build/')), 'no binary of the UDP receive thread: the install builds it');
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('node_modules/') || f.startsWith('data/')), 'no tests, dependencies or data in the package');
  // The package runs its JavaScript build: no TypeScript sources, so nothing can fall back to them.
  assert.ok(!files.some((f) => f.startsWith('src/')), 'no TypeScript sources in the package');

  // On Node 22 and newer every dependency's engines must admit the running Node (engine-strict fails the
  // install otherwise). On Node 20 npm warns: the package's overrides apply to a checkout's `npm ci`, not to
  // an install of the package, which gets content-disposition 3 and cookie 2 (engines node >= 22; they load
  // on Node 20.19+ through require(esm)).
  const engineStrict = Number(process.versions.node.split('.')[0]) >= 22 ? 'true' : 'false';
  const prebuild = await localPrebuild(tmp.dir);
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', path.join(dest, info.filename)], {
    cwd: app,
    env: { ...env, npm_config_engine_strict: engineStrict, npm_config_better_sqlite3_local_prebuilds: prebuild },
    timeout: 200_000,
  });
  const installedAt = Date.now();
  const installedBinary = path.join(app, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  assert.ok(existsSync(installedBinary), 'better-sqlite3 has its native module');
  // Which way the install script went (a source build leaves its object files in build/Release/obj.target;
  // the prebuild holds the .node file only): printed, not asserted, since both are correct installs.
  const native = existsSync(path.join(app, 'node_modules/better-sqlite3/build/Release/obj.target')) ? 'built from source' : "the checkout's build, through prebuild-install";
  // The package's install script built the C UDP receive thread on this Linux machine.
  assert.ok(existsSync(path.join(app, 'node_modules/butler-mqtt/native/build/udp-reader.node')), 'the install built native/build/udp-reader.node');
  // Development tools (the TypeScript loader, the bundler) are not installed with the package.
  assert.ok(!existsSync(path.join(app, 'node_modules/tsx')), 'tsx is not installed');
  assert.ok(!existsSync(path.join(app, 'node_modules/esbuild')), 'esbuild is not installed');

  const npx = (args: string[]) => run('npx', ['--no', '--', 'butler-mqtt', ...args], { cwd: app, env });
  assert.equal((await npx(['--version'])).stdout.trim(), pkg.version);

  const shipped = await npx(['check-config']);
  assert.match(shipped.stdout, /butler-mqtt\/config\/butler-mqtt\.yaml: configuration is valid\n/);

  // Our own config: the shipped one on free ports, outbox and logs in the app folder.
  const [mqttPort, httpPort, udpPort] = [await freePort(), await freePort(), await freeUdpPort()];
  const config = readFileSync(path.join(app, 'node_modules/butler-mqtt/config/butler-mqtt.yaml'), 'utf8')
    .replaceAll('port: 1883', `port: ${mqttPort}`)
    .replaceAll('brokerPort: 1883', `brokerPort: ${mqttPort}`)
    .replace('serverPort: 8080', `serverPort: ${httpPort}`)
    .replace('portTaskFailure: 9998', `portTaskFailure: ${udpPort}`)
    .replace('outboxFile: ../data/butler-mqtt.sqlite', 'outboxFile: data/butler-mqtt.sqlite');
  assert.ok(config.includes(`serverPort: ${httpPort}`) && config.includes(`portTaskFailure: ${udpPort}`), 'ports replaced');
  const configFile = path.join(app, 'butler.yaml');
  writeFileSync(configFile, config);
  const checked = await npx(['check-config', '--config', configFile]);
  assert.ok(checked.stdout.startsWith(`${configFile}: configuration is valid\n`));

  // 1. As a person in a terminal: `npx butler-mqtt run`, stopped with Ctrl-C (SIGINT to the whole
  //    foreground process group). npm's exec then ends by the same signal; the bridge stops cleanly.
  const viaNpx = await startInstalled('npx', ['--no', '--', 'butler-mqtt', 'run', '--config', configFile], app, httpPort);
  process.kill(-viaNpx.pid, 'SIGINT');
  const npxEnd = await withDeadline(viaNpx.closed, 30_000, viaNpx.pid);
  assert.ok(npxEnd.signal === 'SIGINT' || npxEnd.code === 0, `npx ended by SIGINT or with 0: ${JSON.stringify(npxEnd)}`);
  assert.ok(viaNpx.output().includes('SIGINT received: stopping'), viaNpx.output());
  assert.ok(viaNpx.output().includes('butler-mqtt stopped'), viaNpx.output());

  // 2. As a service manager runs it (docs/operations.md): node + the package's bin, stopped with SIGTERM.
  const asService = await startInstalled(process.execPath, [path.join(app, 'node_modules/butler-mqtt/bin/butler-mqtt.js'), 'run', '--config', configFile], app, httpPort);
  process.kill(asService.pid, 'SIGTERM');
  assert.deepEqual(await withDeadline(asService.closed, 30_000, asService.pid), { code: 0, signal: null }, asService.output());
  assert.ok(asService.output().includes('butler-mqtt stopped'), asService.output());
  assert.match(asService.output(), /listening on 127\.0\.0\.1:\d+ \(native receive thread\)/);

  // Measured for the CI budget: printed, not asserted.
  process.stdout.write(`# package test: install ${Math.round((installedAt - started) / 1000)} s (better-sqlite3: ${native}), total ${Math.round((Date.now() - started) / 1000)} s\n`);
});
