// sc.exe output parsing on outputs typed from the documented format (CRLF endings and column
// padding kept), the failure mapping, argument building, and the runner against a stand-in program.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, delimiter } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  parseScQuery,
  parseScQc,
  parseScFailure,
  scArgs,
  isLocalHost,
  interpretRun,
  createScRunner,
  queryService,
  type ScRunner,
} from '../../src/sense/windows-services.ts';

const crlf = (...lines: string[]) => lines.join('\r\n') + '\r\n';

function queryOutput(stateLine: string, flags: string, exit = '0  (0x0)'): string {
  return crlf(
    '',
    'SERVICE_NAME: QlikSenseEngineService',
    '        TYPE               : 10  WIN32_OWN_PROCESS',
    `        STATE              : ${stateLine}`,
    `                                ${flags}`,
    `        WIN32_EXIT_CODE    : ${exit}`,
    '        SERVICE_EXIT_CODE  : 0  (0x0)',
    '        CHECKPOINT         : 0x0',
    '        WAIT_HINT          : 0x0',
    '',
  );
}

test('sc query: RUNNING as documented', () => {
  const out = queryOutput('4  RUNNING', '(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)');
  assert.deepEqual(parseScQuery(out), { ok: true, value: { serviceName: 'QlikSenseEngineService', status: 'RUNNING', state: 'RUNNING', stateCode: 4 } });
});

test('sc query: STOPPED (exit code 1077) is STOPPED', () => {
  const out = queryOutput('1  STOPPED', '(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)', '1077  (0x435)');
  assert.deepEqual(parseScQuery(out), { ok: true, value: { serviceName: 'QlikSenseEngineService', status: 'STOPPED', state: 'STOPPED', stateCode: 1 } });
});

test('sc query: every state other than STOPPED counts as RUNNING, raw state kept', () => {
  const cases: [string, string, number][] = [
    ['2  START_PENDING', 'START_PENDING', 2],
    ['3  STOP_PENDING', 'STOP_PENDING', 3],
    ['5  CONTINUE_PENDING', 'CONTINUE_PENDING', 5],
    ['6  PAUSE_PENDING', 'PAUSE_PENDING', 6],
    ['7  PAUSED', 'PAUSED', 7],
  ];
  for (const [line, state, code] of cases) {
    const out = queryOutput(line, '(STOPPABLE, PAUSABLE, ACCEPTS_SHUTDOWN)');
    assert.deepEqual(parseScQuery(out), { ok: true, value: { serviceName: 'QlikSenseEngineService', status: 'RUNNING', state, stateCode: code } }, line);
  }
});

test('sc query: LF-only output parses the same', () => {
  const out = queryOutput('1  STOPPED', '(NOT_STOPPABLE, NOT_PAUSABLE, IGNORES_SHUTDOWN)').replaceAll('\r\n', '\n');
  assert.deepEqual(parseScQuery(out), { ok: true, value: { serviceName: 'QlikSenseEngineService', status: 'STOPPED', state: 'STOPPED', stateCode: 1 } });
});

test('sc query: output without a STATE line is bad output, not a guess', () => {
  const out = crlf('', 'SERVICE_NAME: X', '        TYPE               : 10  WIN32_OWN_PROCESS', '');
  const result = parseScQuery(out);
  assert.equal(result.ok, false);
  if (!result.ok) {
    assert.equal(result.error.kind, 'bad_output');
    assert.equal(result.error.code, null);
    assert.match(result.error.message, /^sc query printed no STATE line/);
  }
  const empty = parseScQuery('');
  assert.equal(empty.ok, false);
  if (!empty.ok) assert.equal(empty.error.kind, 'bad_output');
});

test('sc qc: two dependencies over a continuation line, as documented', () => {
  const out = crlf(
    '[SC] QueryServiceConfig SUCCESS',
    '',
    'SERVICE_NAME: QlikSenseEngineService',
    '        TYPE               : 10  WIN32_OWN_PROCESS',
    '        START_TYPE         : 2   AUTO_START',
    '        ERROR_CONTROL      : 1   NORMAL',
    '        BINARY_PATH_NAME   : "C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe" -service',
    '        LOAD_ORDER_GROUP   :',
    '        TAG                : 0',
    '        DISPLAY_NAME       : Qlik Sense Engine Service',
    '        DEPENDENCIES       : QlikSenseRepositoryService',
    '                           : QlikSenseServiceDispatcher',
    '        SERVICE_START_NAME : CORP\\qliksense_svc',
  );
  assert.deepEqual(parseScQc(out), {
    ok: true,
    value: {
      serviceName: 'QlikSenseEngineService',
      displayName: 'Qlik Sense Engine Service',
      startType: 'Automatic',
      startTypeCode: 2,
      delayed: false,
      exePath: '"C:\\Program Files\\Qlik\\Sense\\Engine\\Engine.exe" -service',
      dependencies: ['QlikSenseRepositoryService', 'QlikSenseServiceDispatcher'],
    },
  });
});

test('sc qc: no dependencies gives [], DEMAND_START is Manual', () => {
  const out = crlf(
    '[SC] QueryServiceConfig SUCCESS',
    '',
    'SERVICE_NAME: QlikSenseServiceDispatcher',
    '        TYPE               : 10  WIN32_OWN_PROCESS',
    '        START_TYPE         : 3   DEMAND_START',
    '        ERROR_CONTROL      : 1   NORMAL',
    '        BINARY_PATH_NAME   : "C:\\Program Files\\Qlik\\Sense\\ServiceDispatcher\\ServiceDispatcher.exe"',
    '        LOAD_ORDER_GROUP   :',
    '        TAG                : 0',
    '        DISPLAY_NAME       : Qlik Sense Service Dispatcher',
    '        DEPENDENCIES       :',
    '        SERVICE_START_NAME : LocalSystem',
  );
  assert.deepEqual(parseScQc(out), {
    ok: true,
    value: {
      serviceName: 'QlikSenseServiceDispatcher',
      displayName: 'Qlik Sense Service Dispatcher',
      startType: 'Manual',
      startTypeCode: 3,
      delayed: false,
      exePath: '"C:\\Program Files\\Qlik\\Sense\\ServiceDispatcher\\ServiceDispatcher.exe"',
      dependencies: [],
    },
  });
});

test('sc qc: one dependency, delayed automatic start is Automatic', () => {
  const out = crlf(
    '[SC] QueryServiceConfig SUCCESS',
    '',
    'SERVICE_NAME: QlikSenseProxyService',
    '        TYPE               : 10  WIN32_OWN_PROCESS',
    '        START_TYPE         : 2   AUTO_START  (DELAYED)',
    '        ERROR_CONTROL      : 1   NORMAL',
    '        BINARY_PATH_NAME   : "C:\\Program Files\\Qlik\\Sense\\Proxy\\Proxy.exe"',
    '        LOAD_ORDER_GROUP   :',
    '        TAG                : 0',
    '        DISPLAY_NAME       : Qlik Sense Proxy Service',
    '        DEPENDENCIES       : QlikSenseRepositoryService',
    '        SERVICE_START_NAME : CORP\\qliksense_svc',
  );
  assert.deepEqual(parseScQc(out), {
    ok: true,
    value: {
      serviceName: 'QlikSenseProxyService',
      displayName: 'Qlik Sense Proxy Service',
      startType: 'Automatic',
      startTypeCode: 2,
      delayed: true,
      exePath: '"C:\\Program Files\\Qlik\\Sense\\Proxy\\Proxy.exe"',
      dependencies: ['QlikSenseRepositoryService'],
    },
  });
});

function qcWithStartType(startType: string): string {
  return crlf(
    '[SC] QueryServiceConfig SUCCESS',
    '',
    'SERVICE_NAME: Svc',
    `        START_TYPE         : ${startType}`,
    '        BINARY_PATH_NAME   : C:\\svc.exe',
    '        DISPLAY_NAME       : Svc',
    '        DEPENDENCIES       :',
  );
}

test('sc qc: DISABLED is Disabled; driver start types keep the printed name', () => {
  const disabled = parseScQc(qcWithStartType('4   DISABLED'));
  assert.equal(disabled.ok && disabled.value.startType, 'Disabled');
  const boot = parseScQc(qcWithStartType('0   BOOT_START'));
  assert.equal(boot.ok && boot.value.startType, 'BOOT_START');
  const system = parseScQc(qcWithStartType('1   SYSTEM_START'));
  assert.equal(system.ok && system.value.startType, 'SYSTEM_START');
});

test('sc qc: missing DISPLAY_NAME is bad output', () => {
  const out = crlf('[SC] QueryServiceConfig SUCCESS', '', 'SERVICE_NAME: Svc', '        START_TYPE         : 2   AUTO_START', '        BINARY_PATH_NAME   : C:\\svc.exe');
  const result = parseScQc(out);
  assert.equal(result.ok, false);
  if (!result.ok) {
    assert.equal(result.error.kind, 'bad_output');
    assert.match(result.error.message, /^sc qc printed no DISPLAY_NAME line/);
  }
});

test('failures: 1060 not found, 5 access denied, 1722 unreachable, others', () => {
  const notFound = crlf('[SC] EnumQueryServicesStatus:OpenService FAILED 1060:', '', 'The specified service does not exist as an installed service.', '');
  assert.deepEqual(parseScFailure(notFound), { code: 1060, kind: 'not_found', message: 'The specified service does not exist as an installed service.' });
  assert.deepEqual(parseScQuery(notFound), { ok: false, error: { code: 1060, kind: 'not_found', message: 'The specified service does not exist as an installed service.' } });
  assert.deepEqual(parseScQc(crlf('[SC] OpenService FAILED 1060:', '', 'The specified service does not exist as an installed service.', '')), {
    ok: false,
    error: { code: 1060, kind: 'not_found', message: 'The specified service does not exist as an installed service.' },
  });

  const denied = crlf('[SC] OpenSCManager FAILED 5:', '', 'Access is denied.', '');
  assert.deepEqual(parseScQuery(denied), { ok: false, error: { code: 5, kind: 'access_denied', message: 'Access is denied.' } });

  const rpc = crlf('[SC] OpenSCManager FAILED 1722:', '', 'The RPC server is unavailable.', '');
  assert.deepEqual(parseScQc(rpc), { ok: false, error: { code: 1722, kind: 'unreachable', message: 'The RPC server is unavailable.' } });

  const other = crlf('[SC] OpenSCManager FAILED 1115:', '', 'A system shutdown is in progress.', '');
  assert.deepEqual(parseScFailure(other), { code: 1115, kind: 'other', message: 'A system shutdown is in progress.' });

  assert.equal(parseScFailure(queryOutput('4  RUNNING', '(STOPPABLE, NOT_PAUSABLE, ACCEPTS_SHUTDOWN)')), null);
});

test('arguments: \\\\host for remote hosts, none for this machine', () => {
  assert.deepEqual(scArgs('sense1', 'query', 'QlikSenseEngineService', 'butlerbox'), ['\\\\sense1', 'query', 'QlikSenseEngineService']);
  assert.deepEqual(scArgs('sense1.corp.local', 'qc', 'QlikSenseEngineService', 'butlerbox'), ['\\\\sense1.corp.local', 'qc', 'QlikSenseEngineService']);
  assert.deepEqual(scArgs('', 'query', 'Svc', 'butlerbox'), ['query', 'Svc']);
  assert.deepEqual(scArgs('localhost', 'qc', 'Svc', 'butlerbox'), ['qc', 'Svc']);
  assert.deepEqual(scArgs('BUTLERBOX', 'query', 'Svc', 'butlerbox'), ['query', 'Svc']);
  assert.equal(isLocalHost('butlerbox.corp.local', 'BUTLERBOX'), true);
  assert.equal(isLocalHost('butlerbox', 'butlerbox.corp.local'), true);
  assert.equal(isLocalHost('butlerbox.other.local', 'butlerbox.corp.local'), false);
  assert.equal(isLocalHost('127.0.0.1', 'x'), true);
  assert.equal(isLocalHost('sense2', 'sense1'), false);
});

test('interpretRun: spawn failure, timeout and a bare non-zero exit are typed errors', () => {
  const parse = parseScQuery;
  assert.deepEqual(interpretRun({ exitCode: null, stdout: '', stderr: '', timedOut: false, spawnError: 'spawn sc.exe ENOENT' }, 'sc query', 1000, parse), {
    ok: false,
    error: { kind: 'spawn_failed', code: null, message: 'could not run sc query: spawn sc.exe ENOENT' },
  });
  assert.deepEqual(interpretRun({ exitCode: null, stdout: '', stderr: '', timedOut: true }, 'sc query', 1000, parse), {
    ok: false,
    error: { kind: 'timeout', code: null, message: 'sc query gave no answer within 1000 ms' },
  });
  assert.deepEqual(interpretRun({ exitCode: 1722, stdout: '', stderr: '', timedOut: false }, 'sc qc', 1000, parse), {
    ok: false,
    error: { kind: 'unreachable', code: 1722, message: 'sc qc exited with code 1722' },
  });
});

// The stand-in sc.exe replays scripted answers; it lives in test/support/sc-standin.
const standinDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'support', 'sc-standin');

test('runner + queryService against the stand-in: query then qc, remote host argument', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sc-unit-'));
  try {
    const script = join(dir, 'script.json');
    writeFileSync(
      script,
      JSON.stringify({
        hosts: {
          sense1: {
            services: {
              QlikSenseEngineService: {
                states: ['STOP_PENDING'],
                config: { displayName: 'Qlik Sense Engine Service', startType: 3, binaryPath: '"C:\\Qlik\\Engine.exe" -service', dependencies: ['A', 'B', 'C'] },
              },
            },
          },
        },
      }),
    );
    const runner = createScRunner({ env: { ...process.env, PATH: `${standinDir}${delimiter}${process.env['PATH'] ?? ''}`, SC_STANDIN_SCRIPT: script } });
    const result = await queryService(runner, 'sense1', 'QlikSenseEngineService', 10_000, 'butlerbox');
    assert.deepEqual(result, {
      ok: true,
      value: {
        serviceName: 'QlikSenseEngineService',
        status: 'RUNNING',
        state: 'STOP_PENDING',
        displayName: 'Qlik Sense Engine Service',
        startType: 'Manual',
        exePath: '"C:\\Qlik\\Engine.exe" -service',
        dependencies: ['A', 'B', 'C'],
      },
    });
    const missing = await queryService(runner, 'sense1', 'NoSuchService', 10_000, 'butlerbox');
    assert.deepEqual(missing, { ok: false, error: { code: 1060, kind: 'not_found', message: 'The specified service does not exist as an installed service.' } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runner: a program that does not exist is a spawn failure; a hung one times out', async () => {
  const missing = createScRunner({ command: join(standinDir, 'no-such-program') });
  const r1 = await missing(['query', 'x'], 5000);
  assert.equal(r1.exitCode, null);
  assert.equal(r1.timedOut, false);
  assert.match(r1.spawnError ?? '', /ENOENT/);

  const dir = mkdtempSync(join(tmpdir(), 'sc-unit-'));
  try {
    const script = join(dir, 'script.json');
    writeFileSync(script, JSON.stringify({ hosts: { sense1: { services: { Svc: { states: [{ hang: true }] } } } } }));
    const runner: ScRunner = createScRunner({ command: join(standinDir, 'sc.exe'), env: { ...process.env, SC_STANDIN_SCRIPT: script } });
    const r2 = await runner(['\\\\sense1', 'query', 'Svc'], 300);
    assert.equal(r2.timedOut, true);
    assert.equal(r2.exitCode, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
