// Windows service state through `sc.exe`: pure parsers for what `sc query` / `sc qc` print, a
// small runner that spawns the program with a timeout, and queryService, which combines both
// calls into one typed answer. Expected failures (unknown service, access denied, host away,
// timeout) are values, never exceptions.
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';

/** What sc.exe reports with `[SC] … FAILED <code>:`. */
export type ScErrorKind = 'not_found' | 'access_denied' | 'unreachable' | 'other';
export interface ScFailure {
  code: number;
  kind: ScErrorKind;
  message: string;
}

/** A query that produced no answer: an sc.exe failure, or the program not running as expected. */
export type ServiceQueryError =
  | ScFailure
  | { kind: 'timeout' | 'spawn_failed' | 'bad_output'; code: null; message: string };

export type ScResult<T> = { ok: true; value: T } | { ok: false; error: ServiceQueryError };

export type ServiceStatus = 'RUNNING' | 'STOPPED';

/** Parsed `sc query <name>`. */
export interface ScQueryInfo {
  serviceName: string;
  /** Butler's two-valued view: STOPPED when the state says STOPPED, RUNNING for everything else. */
  status: ServiceStatus;
  /** The state name as printed (RUNNING, START_PENDING, PAUSED, …). */
  state: string;
  stateCode: number;
}

/** Parsed `sc qc <name>`. */
export interface ScConfigInfo {
  serviceName: string;
  displayName: string;
  /** Automatic / Manual / Disabled, or the printed name for any other start type (BOOT_START …). */
  startType: string;
  startTypeCode: number;
  delayed: boolean;
  /** BINARY_PATH_NAME exactly as printed, quotes and arguments included. */
  exePath: string;
  dependencies: string[];
}

/** One full answer about a service: its state and its configuration. */
export interface ServiceInfo {
  serviceName: string;
  status: ServiceStatus;
  state: string;
  displayName: string;
  startType: string;
  exePath: string;
  dependencies: string[];
}

const FAILURE_LINE = /^\[SC\][^\r\n]*?FAILED\s+(\d+)\s*:?/m;

/** Recognises sc.exe's failure report; null when the output is not one. */
export function parseScFailure(output: string): ScFailure | null {
  const match = FAILURE_LINE.exec(output);
  if (!match?.[1]) return null;
  const code = Number(match[1]);
  const after = output.slice(match.index + match[0].length);
  const text = after
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
  return { code, kind: failureKind(code), message: text || firstLine(match[0]) };
}

function failureKind(code: number): ScErrorKind {
  switch (code) {
    case 1060:
      return 'not_found';
    case 5:
      return 'access_denied';
    case 1722:
      return 'unreachable';
    default:
      return 'other';
  }
}

/** `sc query <name>` output → state. */
export function parseScQuery(output: string): ScResult<ScQueryInfo> {
  const failure = parseScFailure(output);
  if (failure) return { ok: false, error: failure };
  const lines = output.split(/\r?\n/);
  const serviceName = lines.map((l) => /^SERVICE_NAME:\s?(.*)$/.exec(l)?.[1]).find((v) => v !== undefined);
  const fields = readFields(lines);
  const stateValue = fields.get('STATE')?.[0];
  const state = stateValue === undefined ? null : /^(\d+)\s+(\S+)/.exec(stateValue);
  if (serviceName === undefined || !state?.[1] || !state[2]) {
    return { ok: false, error: badOutput('sc query', output, serviceName === undefined ? 'SERVICE_NAME' : 'STATE') };
  }
  const name = state[2];
  return {
    ok: true,
    value: { serviceName, status: name.includes('STOPPED') ? 'STOPPED' : 'RUNNING', state: name, stateCode: Number(state[1]) },
  };
}

const START_TYPES: Record<number, string> = { 2: 'Automatic', 3: 'Manual', 4: 'Disabled' };

/**
 * `sc qc <name>` output → configuration. Start types 2/3/4 map to Butler's Automatic / Manual /
 * Disabled (a delayed automatic start is still Automatic). Other codes only occur for drivers
 * (0 BOOT_START, 1 SYSTEM_START); Butler gives up on those, here the printed name is passed on so
 * the service is still monitored and the payload keeps its shape.
 */
export function parseScQc(output: string): ScResult<ScConfigInfo> {
  const failure = parseScFailure(output);
  if (failure) return { ok: false, error: failure };
  const lines = output.split(/\r?\n/);
  const serviceName = lines.map((l) => /^SERVICE_NAME:\s?(.*)$/.exec(l)?.[1]).find((v) => v !== undefined);
  const fields = readFields(lines);
  const startValue = fields.get('START_TYPE')?.[0];
  const start = startValue === undefined ? null : /^(\d+)\s*(\S*)/.exec(startValue);
  const displayName = fields.get('DISPLAY_NAME')?.[0];
  const exePath = fields.get('BINARY_PATH_NAME')?.[0];
  if (serviceName === undefined) return { ok: false, error: badOutput('sc qc', output, 'SERVICE_NAME') };
  if (!start?.[1]) return { ok: false, error: badOutput('sc qc', output, 'START_TYPE') };
  if (displayName === undefined) return { ok: false, error: badOutput('sc qc', output, 'DISPLAY_NAME') };
  if (exePath === undefined) return { ok: false, error: badOutput('sc qc', output, 'BINARY_PATH_NAME') };
  const code = Number(start[1]);
  const dependencies = (fields.get('DEPENDENCIES') ?? []).map((d) => d.trim()).filter((d) => d !== '');
  return {
    ok: true,
    value: {
      serviceName,
      displayName,
      startType: START_TYPES[code] ?? (start[2] || `Unknown (${code})`),
      startTypeCode: code,
      delayed: startValue?.includes('(DELAYED)') === true,
      exePath,
      dependencies,
    },
  };
}

/**
 * The indented `KEY   : value` lines, each key with its values: the value on the key's own line
 * first, then the values of following continuation lines (`   : value`, as DEPENDENCIES uses).
 * Values are kept as printed after the `: ` separator.
 */
function readFields(lines: string[]): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of lines) {
    const keyed = /^\s+([A-Z][A-Z0-9_]*)\s*:(?: (.*))?$/.exec(line);
    if (keyed?.[1]) {
      current = [keyed[2] ?? ''];
      if (!fields.has(keyed[1])) fields.set(keyed[1], current);
      continue;
    }
    const continuation = /^\s+:(?: (.*))?$/.exec(line);
    if (continuation && current) {
      current.push(continuation[1] ?? '');
      continue;
    }
    current = null;
  }
  return fields;
}

function badOutput(command: string, output: string, missing: string): ServiceQueryError {
  const excerpt = output.trim().slice(0, 200);
  return { kind: 'bad_output', code: null, message: `${command} printed no ${missing} line: ${JSON.stringify(excerpt)}` };
}

function firstLine(text: string): string {
  return text.split(/\r?\n/)[0] ?? text;
}

// ---------------------------------------------------------------------------------------------
// Running sc.exe

export interface ScRunResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the program could not be started at all (not found, not executable). */
  spawnError?: string;
}

/** Runs sc.exe with the given arguments; never rejects. */
export type ScRunner = (args: string[], timeoutMs: number) => Promise<ScRunResult>;

export interface ScRunnerOptions {
  /** Program to run, looked up on PATH unless it is a path; defaults to `sc.exe`. */
  command?: string;
  /** Environment for the child (and its PATH for the lookup); defaults to this process's. */
  env?: NodeJS.ProcessEnv;
}

// sc.exe prints a few hundred bytes; anything far beyond that is not sc.exe talking.
const MAX_OUTPUT_BYTES = 1024 * 1024;
// After a kill, stop waiting for the pipes to close after this long.
const KILL_GRACE_MS = 2000;

/**
 * The default runner: spawns the program (no shell, so host and service names are passed as
 * arguments and never interpreted), collects its output, kills it at the timeout. Output is read
 * as UTF-8; sc.exe writes in the console code page, which is the same for the ASCII that service
 * names, states and the fields used here consist of in practice.
 */
export function createScRunner(options: ScRunnerOptions = {}): ScRunner {
  const command = options.command ?? 'sc.exe';
  return (args, timeoutMs) =>
    new Promise<ScRunResult>((resolve) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let size = 0;
      let timedOut = false;
      let settled = false;
      let graceTimer: NodeJS.Timeout | undefined;

      const finish = (result: Omit<ScRunResult, 'stdout' | 'stderr' | 'timedOut'>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        resolve({ ...result, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8'), timedOut });
      };

      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(command, args, { env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
      } catch (err) {
        resolve({ exitCode: null, stdout: '', stderr: '', timedOut: false, spawnError: err instanceof Error ? err.message : String(err) });
        return;
      }

      const collect = (into: Buffer[]) => (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_OUTPUT_BYTES) into.push(chunk);
      };
      child.stdout?.on('data', collect(stdout));
      child.stderr?.on('data', collect(stderr));

      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
        graceTimer = setTimeout(() => finish({ exitCode: null }), KILL_GRACE_MS);
      }, timeoutMs);

      child.on('error', (err) => {
        // Emitted when spawning fails; after a successful spawn only for a failed kill, which the
        // grace timer covers.
        if (child.pid === undefined) finish({ exitCode: null, spawnError: err.message });
      });
      child.on('close', (code) => finish({ exitCode: code }));
    });
}

/**
 * Whether `host` names this machine. sc.exe is then run without `\\host`, so it talks to the
 * local Service Control Manager directly instead of over remote RPC (which needs the RPC
 * endpoint reachable and network logon rights even for the machine itself). Local means: empty,
 * `localhost`, `.`, a loopback address, or this machine's name (case-insensitive; a dotted name
 * also matches by its first label when one of the two has no domain part).
 */
export function isLocalHost(host: string, localHostname: string = hostname()): boolean {
  const h = host.trim().toLowerCase();
  if (h === '' || h === 'localhost' || h === '.' || h === '127.0.0.1' || h === '::1') return true;
  const local = localHostname.trim().toLowerCase();
  if (local === '') return false;
  if (h === local) return true;
  const shortH = h.split('.')[0];
  const shortLocal = local.split('.')[0];
  return shortH === shortLocal && (!h.includes('.') || !local.includes('.'));
}

/** Arguments for `sc.exe [\\host] <command> <name>`. */
export function scArgs(host: string, command: 'query' | 'qc', serviceName: string, localHostname?: string): string[] {
  return isLocalHost(host, localHostname) ? [command, serviceName] : [`\\\\${host.trim()}`, command, serviceName];
}

/** Turns a finished run into parsed output or the reason there is none. */
export function interpretRun<T>(run: ScRunResult, command: string, timeoutMs: number, parse: (output: string) => ScResult<T>): ScResult<T> {
  if (run.spawnError !== undefined) return { ok: false, error: { kind: 'spawn_failed', code: null, message: `could not run ${command}: ${run.spawnError}` } };
  if (run.timedOut) return { ok: false, error: { kind: 'timeout', code: null, message: `${command} gave no answer within ${timeoutMs} ms` } };
  const failure = parseScFailure(run.stdout) ?? parseScFailure(run.stderr);
  if (failure) return { ok: false, error: failure };
  if (run.exitCode !== 0) {
    const text = `${run.stdout}\n${run.stderr}`.trim().slice(0, 200);
    const code = run.exitCode ?? -1;
    return { ok: false, error: { code, kind: failureKind(code), message: `${command} exited with code ${String(run.exitCode)}${text ? `: ${text}` : ''}` } };
  }
  return parse(run.stdout);
}

/**
 * State and configuration of one service: `sc query` then, when that answered, `sc qc`.
 * `timeoutMs` applies to each of the two calls.
 */
export async function queryService(runner: ScRunner, host: string, serviceName: string, timeoutMs: number, localHostname?: string): Promise<ScResult<ServiceInfo>> {
  const queryRun = await runner(scArgs(host, 'query', serviceName, localHostname), timeoutMs);
  const query = interpretRun(queryRun, 'sc query', timeoutMs, parseScQuery);
  if (!query.ok) return query;
  const qcRun = await runner(scArgs(host, 'qc', serviceName, localHostname), timeoutMs);
  const qc = interpretRun(qcRun, 'sc qc', timeoutMs, parseScQc);
  if (!qc.ok) return qc;
  return {
    ok: true,
    value: {
      serviceName,
      status: query.value.status,
      state: query.value.state,
      displayName: qc.value.displayName,
      startType: qc.value.startType,
      exePath: qc.value.exePath,
      dependencies: qc.value.dependencies,
    },
  };
}
