// Checks a loaded config against the machine before anything starts: every file the enabled features
// will read is readable and, for PEM files, parses as a certificate or private key; the outbox and the log
// directory can be created and written. Each problem names its config key, so `run` and `check-config`
// can say "Butler.mqttConfig.delivery.outboxFile: …" instead of a raw ENOTDIR or OpenSSL trace.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import path from 'node:path';
import type { LoadedConfig } from './load.ts';

export interface PreflightProblem {
  /** Dotted config key, e.g. Butler.mqttConfig.delivery.outboxFile */
  key: string;
  message: string;
  /** Start-up goes on without it (the log file: logging falls back to the console). */
  warning?: boolean;
}

type PemKind = 'certificate' | 'private key';

interface FileCheck {
  key: string;
  file: string;
  what: string;
  pem?: PemKind;
}

/** The files the enabled parts of this config read at start-up. */
function filesInUse(config: LoadedConfig): FileCheck[] {
  const b = config.butler;
  const m = b.mqttConfig;
  const out: FileCheck[] = [];
  const add = (key: string, file: string, what: string, pem?: PemKind) => {
    if (file) out.push({ key: `Butler.${key}`, file, what, ...(pem ? { pem } : {}) });
  };
  if (m.enable) {
    if (m.azureEventGrid.enable) {
      add('mqttConfig.azureEventGrid.clientCertFile', m.azureEventGrid.clientCertFile, 'Event Grid client certificate', 'certificate');
      add('mqttConfig.azureEventGrid.clientKeyFile', m.azureEventGrid.clientKeyFile, 'Event Grid client key', 'private key');
      add('mqttConfig.azureEventGrid.caFile', m.azureEventGrid.caFile, 'Event Grid CA certificate', 'certificate');
    } else if (m.tls.enable) {
      add('mqttConfig.tls.caFile', m.tls.caFile, 'broker CA certificate', 'certificate');
      add('mqttConfig.tls.certFile', m.tls.certFile, 'broker client certificate', 'certificate');
      add('mqttConfig.tls.keyFile', m.tls.keyFile, 'broker client key', 'private key');
    }
    const fwd = m.qlikSenseCloud.event.mqttForward;
    if (fwd.enable) add('mqttConfig.qlikSenseCloud.event.mqttForward.broker.caFile', fwd.broker.caFile, 'forward broker CA certificate', 'certificate');
  }
  const rest = b.restServerConfig;
  if (rest.enable && rest.tls.enable) {
    add('restServerConfig.tls.cert', rest.tls.cert, 'HTTPS server certificate', 'certificate');
    add('restServerConfig.tls.key', rest.tls.key, 'HTTPS server key', 'private key');
    add('restServerConfig.tls.ca', rest.tls.ca, 'HTTPS CA certificate', 'certificate');
  }
  if (b.configQRS.host && b.configQRS.useSSL) {
    add('cert.clientCert', b.cert.clientCert, 'Sense client certificate', 'certificate');
    add('cert.clientCertKey', b.cert.clientCertKey, 'Sense client key', 'private key');
    add('cert.clientCertCA', b.cert.clientCertCA, 'Sense root CA', 'certificate');
  }
  if (b.qlikSenseCloud.enable) add('qlikSenseCloud.event.mqtt.tenant.caFile', b.qlikSenseCloud.event.mqtt.tenant.caFile, 'Qlik Cloud CA certificate', 'certificate');
  return out;
}

function errnoText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT': return 'it does not exist';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'EISDIR': return 'it is a directory';
    case 'ENOTDIR': return 'a part of the path is a file, not a directory';
    default: return e.code ?? e.message;
  }
}

function checkFile(c: FileCheck): PreflightProblem | null {
  let data: Buffer;
  try {
    if (statSync(c.file).isDirectory()) return { key: c.key, message: `the ${c.what} ${JSON.stringify(c.file)} is a directory, not a file` };
    data = readFileSync(c.file);
  } catch (err) {
    return { key: c.key, message: `cannot read the ${c.what} ${JSON.stringify(c.file)}: ${errnoText(err)}` };
  }
  if (!c.pem) return null;
  try {
    if (c.pem === 'certificate') new X509Certificate(data);
    else createPrivateKey(data);
  } catch (err) {
    const reason = (err as Error).message.replace(/^error:[0-9A-F]+:/i, '').trim();
    return { key: c.key, message: `the ${c.what} ${JSON.stringify(c.file)} is not a valid PEM ${c.pem}: ${reason}` };
  }
  return null;
}

/**
 * Can a file be created (or written) at `file`? SQLite also writes `-wal` and `-shm` files next to it,
 * so the directory must be writable too. Missing directories are created at start: the nearest existing
 * ancestor must be a writable directory.
 */
export function writableFileProblem(file: string): string | null {
  try {
    const st = statSync(file);
    if (st.isDirectory()) return `${JSON.stringify(file)} is a directory; give the path of a file in it`;
    accessSync(file, constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return `${JSON.stringify(file)} is not writable (permission denied)`;
    if (code === 'ENOTDIR') return underAFile(file) ?? `${JSON.stringify(file)}: a part of the path is not a directory`;
    if (code !== 'ENOENT') return `${JSON.stringify(file)}: ${errnoText(err)}`;
  }
  return directoryProblem(path.dirname(file));
}

/** Problem with a directory that must exist or be creatable, and be writable. */
export function directoryProblem(dir: string): string | null {
  let probe = dir;
  for (;;) {
    try {
      const st = statSync(probe);
      if (!st.isDirectory()) return `${JSON.stringify(probe)} is a file, so ${JSON.stringify(dir)} cannot be a directory`;
      accessSync(probe, constants.W_OK | constants.X_OK);
      return null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EACCES' || code === 'EPERM') return `the directory ${JSON.stringify(probe)} is not writable (permission denied)`;
      if (code === 'ENOTDIR') return underAFile(probe) ?? `${JSON.stringify(dir)}: a part of the path is not a directory`;
      if (code !== 'ENOENT') return `${JSON.stringify(probe)}: ${errnoText(err)}`;
      const parent = path.dirname(probe);
      if (parent === probe) return `no part of ${JSON.stringify(dir)} exists`;
      probe = parent;
    }
  }
}

/** The first ancestor of `p` that is a file, as a message. */
function underAFile(p: string): string | null {
  const parts = path.resolve(p).split(path.sep);
  for (let i = 1; i < parts.length; i++) {
    const prefix = parts.slice(0, i + 1).join(path.sep) || path.sep;
    try {
      if (!statSync(prefix).isDirectory()) return `${JSON.stringify(prefix)} is a file, so nothing can be created under it`;
    } catch {
      return null;
    }
  }
  return null;
}

/** Everything that would make `run` fail on this machine, each with its config key. */
export function preflight(config: LoadedConfig): PreflightProblem[] {
  const b = config.butler;
  const problems: PreflightProblem[] = [];
  for (const f of filesInUse(config)) {
    const p = checkFile(f);
    if (p) problems.push(p);
  }
  if (b.mqttConfig.enable) {
    const p = writableFileProblem(b.mqttConfig.delivery.outboxFile);
    if (p) problems.push({ key: 'Butler.mqttConfig.delivery.outboxFile', message: `the outbox cannot be stored there: ${p}` });
  }
  if (b.fileLogging) {
    const p = directoryProblem(b.logDirectory);
    if (p) problems.push({ key: 'Butler.logDirectory', message: `the log file cannot be written there (logging goes to the console only): ${p}`, warning: true });
  }
  return problems;
}

export function formatProblem(p: PreflightProblem): string {
  return `  ${p.key}: ${p.warning ? 'warning: ' : ''}${p.message}`;
}
