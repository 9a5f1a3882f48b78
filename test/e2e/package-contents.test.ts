// What `npm pack` puts in the package, without installing it (test/e2e/package.test.ts installs and
// runs it): the service files for systemd and Windows, the docs, no tests, sources or key material; and
// the shipped systemd unit passes systemd's own check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../support/bridge.ts';

const run = promisify(execFile);
const env = { ...process.env, npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

test('npm pack: service files, docs and config in; tests, sources, data and keys out', { timeout: 120_000 }, async () => {
  const packed = await run('npm', ['pack', '--dry-run', '--json'], { cwd: REPO_ROOT, env, maxBuffer: 16 * 1024 * 1024 });
  const files = (JSON.parse(packed.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const f of [
    'packaging/butler-mqtt.service',
    'packaging/windows/install-service.ps1',
    'README.md',
    'docs/connect-to-sense.md',
    'docs/migrate-from-butler.md',
    'docs/messages.md',
    'docs/operations.md',
    'docs/sense-setup.md',
    'docs/configuration.md',
    'config/butler-mqtt.yaml',
    'bin/butler-mqtt.js',
    'dist/main.mjs',
  ]) {
    assert.ok(files.includes(f), `${f} is in the package`);
  }
  const unwanted = files.filter((f) => /^(test|src|data|node_modules|bench|test-artifacts)\//.test(f) || /\.(pem|key|pfx|p12|crt|sqlite)$/i.test(f) || /\.test\.[cm]?[jt]s$/.test(f));
  assert.deepEqual(unwanted, []);
});

test('the shipped systemd unit passes systemd-analyze verify and runs the documented command', async () => {
  const unit = path.join(REPO_ROOT, 'packaging/butler-mqtt.service');
  // systemd-analyze exits 0 on unknown keys and bad values too; it only says so on stderr.
  const checked = await run('systemd-analyze', ['verify', unit]);
  assert.equal(checked.stderr, '');
  const text = readFileSync(unit, 'utf8');
  assert.match(text, /^ExecStart=\/usr\/bin\/node \/opt\/butler-mqtt\/node_modules\/butler-mqtt\/bin\/butler-mqtt\.js run --config \/etc\/butler-mqtt\/butler\.yaml$/m);
  assert.match(text, /^RestartPreventExitStatus=2$/m);
  assert.match(text, /^KillSignal=SIGTERM$/m);
  // The documentation shows the same command the unit runs.
  assert.ok(readFileSync(path.join(REPO_ROOT, 'docs/operations.md'), 'utf8').includes('`ExecStart=/usr/bin/node /opt/butler-mqtt/node_modules/butler-mqtt/bin/butler-mqtt.js run --config /etc/butler-mqtt/butler.yaml`'));
});

test('the Windows install script: the command line, Ctrl-C stop with a 30 s wait, no restart on exit code 2, sc.exe failure', () => {
  // PowerShell and NSSM are not available here; what can be checked is that the script sets what the
  // documentation promises (the command line itself runs in test/e2e/tour.test.ts).
  const ps1 = readFileSync(path.join(REPO_ROOT, 'packaging/windows/install-service.ps1'), 'utf8');
  assert.match(ps1, /\$bin = Join-Path \$InstallDir 'node_modules\\butler-mqtt\\bin\\butler-mqtt\.js'/);
  assert.match(ps1, /Invoke-Nssm set \$ServiceName AppParameters "\$bin run --config \$Config"/);
  assert.match(ps1, /& \$Node \$bin check-config --config \$Config/);
  assert.match(ps1, /Invoke-Nssm set \$ServiceName AppStopMethodConsole 30000/);
  assert.match(ps1, /Invoke-Nssm set \$ServiceName AppExit Default Restart/);
  assert.match(ps1, /Invoke-Nssm set \$ServiceName AppExit 2 Exit/);
  assert.match(ps1, /& sc\.exe failure \$ServiceName reset= 86400 actions= restart\/5000\/restart\/10000\/restart\/60000/);
  // Windows PowerShell 5.1 reads a script without a BOM as the system code page: keep it ASCII.
  assert.ok(/^[\x09\x0a\x0d\x20-\x7e]*$/.test(ps1), 'the script is plain ASCII');
});
