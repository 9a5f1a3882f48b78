// Test certificates made at run time with the openssl CLI: a CA, a server certificate for
// localhost/127.0.0.1, client certificates on demand, and an unrelated CA with its own client
// certificate for "wrong certificate" tests. Nothing is committed; everything lives in a temp dir.
import { execFile, execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { chmodSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertPair {
  cert: string;
  key: string;
}

export interface TestPki {
  /** Directory holding every file below. */
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate (CN = name) signed by the test CA; made on first use, then reused. */
  client(name: string): CertPair;
  /** A client certificate signed by a second, unrelated CA (caCert is that CA). */
  foreignClient: CertPair & { caCert: string };
  cleanup(): Promise<void>;
}

// EC P-256 keeps generation fast; OpenSSL 3 and Mosquitto 2 both accept it.
const KEY_ARGS = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

const CA_EXT = [
  'basicConstraints = critical, CA:TRUE',
  'keyUsage = critical, keyCertSign, cRLSign, digitalSignature',
  'subjectKeyIdentifier = hash',
  'authorityKeyIdentifier = keyid:always',
].join('\n');

const SERVER_EXT = [
  'basicConstraints = critical, CA:FALSE',
  'keyUsage = critical, digitalSignature, keyEncipherment',
  'extendedKeyUsage = serverAuth, clientAuth',
  'subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1',
  'subjectKeyIdentifier = hash',
  'authorityKeyIdentifier = keyid, issuer',
].join('\n');

const CLIENT_EXT = [
  'basicConstraints = critical, CA:FALSE',
  'keyUsage = critical, digitalSignature, keyEncipherment',
  'extendedKeyUsage = clientAuth',
  'subjectKeyIdentifier = hash',
  'authorityKeyIdentifier = keyid, issuer',
].join('\n');

function serial(): string {
  // Positive, non-zero 64-bit serial; distinct serials keep OpenSSL from complaining about reuse.
  return '0x' + (randomBytes(8).readBigUInt64BE() | 1n).toString(16);
}

function caArgs(dir: string, name: string, cn: string): string[] {
  return ['req', '-x509', ...KEY_ARGS, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`),
    '-days', '2', '-subj', `/O=butler-mqtt tests/CN=${cn}`, '-config', join(dir, 'openssl.cnf'),
    '-extensions', 'ca_ext', '-set_serial', serial()];
}

function csrArgs(dir: string, name: string, cn: string): string[] {
  return ['req', '-new', ...KEY_ARGS, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`),
    '-subj', `/O=butler-mqtt tests/CN=${cn}`, '-config', join(dir, 'openssl.cnf')];
}

function signArgs(dir: string, name: string, ca: string, extFile: string): string[] {
  return ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, `${ca}.crt`), '-CAkey', join(dir, `${ca}.key`),
    '-set_serial', serial(), '-days', '2', '-sha256', '-extfile', join(dir, extFile), '-out', join(dir, `${name}.crt`)];
}

// A minimal config so openssl never reads the system one (which may point at missing files).
const OPENSSL_CNF = [
  '[req]',
  'distinguished_name = dn',
  'prompt = no',
  '[dn]',
  'CN = unused',
  '[ca_ext]',
  CA_EXT,
  '',
].join('\n');

function fileName(name: string): string {
  return 'client-' + name.replace(/[^A-Za-z0-9_.-]/g, '_');
}

export async function createTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'butler-mqtt-pki-'));
  // Readable by other users so a broker that drops privileges can still load the throwaway keys.
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'openssl.cnf'), OPENSSL_CNF);
  await writeFile(join(dir, 'server.ext'), SERVER_EXT + '\n');
  await writeFile(join(dir, 'client.ext'), CLIENT_EXT + '\n');

  const openssl = (args: string[]) => run('openssl', args, { cwd: dir });

  await Promise.all([
    openssl(caArgs(dir, 'ca', 'butler-mqtt test CA')),
    openssl(caArgs(dir, 'foreign-ca', 'unrelated test CA')),
    openssl(csrArgs(dir, 'server', 'localhost')),
    openssl(csrArgs(dir, 'foreign-client', 'foreign-client')),
  ]);
  await Promise.all([
    openssl(signArgs(dir, 'server', 'ca', 'server.ext')),
    openssl(signArgs(dir, 'foreign-client', 'foreign-ca', 'client.ext')),
  ]);

  const makeReadable = (paths: string[]) => paths.forEach((p) => chmodSync(p, 0o644));
  makeReadable(['ca.crt', 'ca.key', 'server.crt', 'server.key', 'foreign-ca.crt', 'foreign-client.crt', 'foreign-client.key'].map((f) => join(dir, f)));

  const clients = new Map<string, CertPair>();
  const client = (name: string): CertPair => {
    const known = clients.get(name);
    if (known) return known;
    const base = fileName(name);
    execFileSync('openssl', csrArgs(dir, base, name), { cwd: dir, stdio: 'pipe' });
    execFileSync('openssl', signArgs(dir, base, 'ca', 'client.ext'), { cwd: dir, stdio: 'pipe' });
    const pair = { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
    makeReadable([pair.cert, pair.key]);
    clients.set(name, pair);
    return pair;
  };

  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    client,
    foreignClient: { cert: join(dir, 'foreign-client.crt'), key: join(dir, 'foreign-client.key'), caCert: join(dir, 'foreign-ca.crt') },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Writes a file into the PKI directory (e.g. a broken certificate for error tests) and returns its path. */
export function writePkiFile(pki: TestPki, name: string, content: string): string {
  const path = join(pki.dir, name.replace(/[^A-Za-z0-9_.-]/g, '_'));
  writeFileSync(path, content, { mode: 0o644 });
  return path;
}
