// Where the package is installed, found the same way whether this code runs from the TypeScript
// sources (src/…) or from the JavaScript build (dist/…, where modules sit at other depths).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        if ((JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'butler-mqtt') return dir;
      } catch {
        // not ours; keep looking upwards
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('butler-mqtt: cannot find the package folder (package.json)');
    dir = parent;
  }
}

export const PACKAGE_ROOT = findRoot();

let version: string | undefined;

/** The package's version, from its package.json. */
export function packageVersion(): string {
  version ??= (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  return version;
}

/**
 * A folder of static files shipped with the package: next to the sources (src/http/status) or, in
 * the build, copied to dist/ under its last name (dist/status).
 */
export function assetDir(sourceDir: string): string {
  const fromSources = path.join(PACKAGE_ROOT, sourceDir);
  if (existsSync(fromSources)) return fromSources;
  return path.join(PACKAGE_ROOT, 'dist', path.basename(sourceDir));
}
