// The machine a benchmark ran on, written into every result file: figures mean little without it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { mosquittoPath } from '../../test/support/broker.ts';

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return (e.stdout || e.stderr || '').trim() || 'unavailable';
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

export interface MachineInfo {
  nproc: string;
  cpuModel: string;
  freeH: string;
  os: string;
  kernel: string;
  node: string;
  /** The V8 of that Node: garbage collection and JIT, so CPU and memory figures, change with it. */
  v8: string;
  broker: string;
  rmemMax: string;
}

export function describeMachine(brokerKind: string): MachineInfo {
  const osRelease = readOr('/etc/os-release', '');
  const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? `${os.type()} ${os.release()}`;
  const debian = readOr('/etc/debian_version', '');
  const mosquitto = mosquittoPath();
  return {
    nproc: run('nproc', []),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    freeH: run('free', ['-h']),
    os: debian ? `${pretty} (${debian})` : pretty,
    kernel: os.release(),
    node: process.version,
    v8: process.versions.v8,
    broker: brokerKind === 'mosquitto' && mosquitto ? run(mosquitto, ['-h']).split('\n')[0] ?? 'mosquitto' : brokerKind,
    rmemMax: readOr('/proc/sys/net/core/rmem_max', 'unknown'),
  };
}
