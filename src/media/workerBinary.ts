import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** mediasoup does not export its package.json; its entry point is node/lib/index.js. */
const packageDir = path.resolve(path.dirname(require.resolve('mediasoup')), '..', '..');

export function mediasoupVersion(): string {
  return (require(path.join(packageDir, 'package.json')) as { version: string }).version;
}

/** Where scripts/setup.sh caches a worker it built, keyed by version and platform. */
export function cachedWorkerPath(version = mediasoupVersion()): string {
  const cacheHome = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cacheHome, 'vigie', `mediasoup-worker-${version}-${process.platform}-${process.arch}`);
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the mediasoup-worker binary: an explicit path, then a prebuilt worker
 * inside the mediasoup package, then the cached build. Fails with the command
 * that fixes it rather than letting mediasoup spawn a missing file.
 */
export function resolveWorkerBin(explicit?: string): string {
  if (explicit) {
    if (!executable(explicit)) throw new Error(`MEDIASOUP_WORKER_BIN=${explicit} is not an executable file`);
    return explicit;
  }
  const prebuilt = path.join(packageDir, 'worker', 'out', 'Release', 'mediasoup-worker');
  if (executable(prebuilt)) return prebuilt;
  const cached = cachedWorkerPath();
  if (executable(cached)) return cached;
  throw new Error(
    `no mediasoup-worker binary found (looked at ${prebuilt} and ${cached}); run "npm run setup" to build it`,
  );
}
