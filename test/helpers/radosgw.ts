import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onProcessEnd } from './processEnd.js';

const SCRIPTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/radosgw');
const START = path.join(SCRIPTS, 'start.sh');
const STOP = path.join(SCRIPTS, 'stop.sh');

export interface Radosgw {
  /** `http://127.0.0.1:PORT` */
  endpoint: string;
  host: string;
  port: number;
  /** The Ceph monitor's port (msgr2 only), next to `port`. */
  monPort: number;
  /** Region string for S3 clients: radosgw's default zonegroup accepts `us-east-1`. */
  region: string;
  accessKey: string;
  secretKey: string;
  /** Key id for `x-amz-server-side-encryption: aws:kms` (radosgw's "testing" KMS backend). */
  kmsKeyId: string;
  /** Cluster directory (ceph.conf, logs in `log/`, pid files in `run/`); removed by stop(). */
  dir: string;
  /** Everything start.sh/stop.sh printed so far. */
  logs: () => string;
  /** Stops radosgw, the OSD and the monitor, and removes `dir`. Idempotent. */
  stop: () => Promise<void>;
  /**
   * S3 outage: stops only radosgw (SIGTERM, or SIGKILL with `kill: true`). Objects stay in
   * the OSD; connections to `endpoint` are refused until startGateway().
   */
  stopGateway: (opts?: { kill?: boolean }) => Promise<void>;
  /** Starts radosgw again on the same port with the same data; resolves when it answers HTTP. */
  startGateway: () => Promise<void>;
  /** stopGateway() then startGateway(): same port, same users, same objects. */
  restart: (opts?: { kill?: boolean }) => Promise<void>;
}

/** Throws if the Ceph binaries are missing: S3 tests must fail, never skip. */
function assertInstalled(): void {
  const missing: string[] = [];
  for (const [bin, pkg] of [
    ['radosgw', 'radosgw'],
    ['radosgw-admin', 'ceph-common'],
    ['ceph', 'ceph-common'],
    ['ceph-mon', 'ceph-mon'],
    ['ceph-osd', 'ceph-osd'],
    ['monmaptool', 'ceph-base'],
  ] as const) {
    const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
    if (r.status !== 0) missing.push(`${bin} (Debian package ${pkg})`);
  }
  if (missing.length) {
    throw new Error(
      `Ceph RADOS Gateway is required for the S3 tests but these are missing: ${missing.join(', ')}. ` +
        'Install with: apt-get install -y radosgw ceph-mon ceph-osd ceph-common',
    );
  }
}

function tcpFree(port: number): Promise<boolean> {
  const srv = net.createServer();
  return new Promise((resolve) => {
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  timedOut: boolean;
}

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
  onOutput: (s: string) => void,
  env?: NodeJS.ProcessEnv,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // detached: the script gets its own process group, so a timeout kills its children too.
    // The Ceph daemons it starts daemonize (setsid) and are not in that group.
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: env ?? process.env });
    let output = '';
    const add = (c: Buffer) => {
      const s = c.toString();
      output += s;
      onOutput(s);
    };
    child.stdout.on('data', add);
    child.stderr.on('data', add);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, output, timedOut });
    });
  });
}

function describe(what: string, r: RunResult, timeoutMs: number): string {
  const why = r.timedOut ? `timed out after ${timeoutMs} ms` : `exited with ${r.code ?? r.signal}`;
  return `${what} ${why}; its output:\n${r.output.trimEnd()}`;
}

const live = new Set<string>();
let exitHookInstalled = false;
/**
 * The Ceph daemons are detached: if the test process exits (or is killed by SIGINT/SIGTERM,
 * e.g. a test-runner timeout) without stop(), kill them anyway, synchronously.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const dir of live) {
      spawnSync('bash', [STOP, dir, '--kill'], { stdio: 'ignore', timeout: 10_000 });
      rmSync(dir, { recursive: true, force: true });
    }
    live.clear();
  };
  onProcessEnd(killAll);
}

/**
 * Starts a fresh single-host Ceph cluster (memstore OSD, data in memory) with radosgw on
 * 127.0.0.1 (S3 on a free port in 20000-29999, the monitor on the next port), and an S3 user
 * with random keys. Takes about 2 s; the timeout is generous for loaded CI machines.
 */
export async function startRadosgw({ timeoutMs = 120_000 }: { timeoutMs?: number } = {}): Promise<Radosgw> {
  assertInstalled();
  installExitHook();
  let logText = '';
  const append = (s: string) => (logText += s);
  const failures: string[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 5000) * 2;
    if (!(await tcpFree(port)) || !(await tcpFree(port + 1))) {
      failures.push(`ports ${port}/${port + 1} busy`);
      continue;
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-radosgw-'));
    const accessKey = `VIGIE${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretKey = randomBytes(24).toString('base64url');
    const kmsKeyId = 'vigie-test';
    live.add(dir);
    const env = { ...process.env, RADOSGW_KMS_KEY_NAME: kmsKeyId };
    const r = await run(
      'bash',
      [START, dir, String(port), accessKey, secretKey, String(port + 1)],
      timeoutMs,
      append,
      env,
    );
    const endpoint = `http://127.0.0.1:${port}`;
    if (r.code === 0 && r.output.includes(`READY ${endpoint}`)) {
      let stopped = false;
      const stopGateway = async (opts: { kill?: boolean } = {}) => {
        const s = await run('bash', [STOP, dir, '--gateway', ...(opts.kill ? ['--kill'] : [])], 60_000, append);
        if (s.code !== 0) throw new Error(describe('stop.sh --gateway', s, 60_000));
      };
      const startGateway = async () => {
        const s = await run('bash', [START, '--gateway', dir], timeoutMs, append);
        if (s.code !== 0 || !s.output.includes(`READY ${endpoint}`))
          throw new Error(describe('start.sh --gateway', s, timeoutMs));
      };
      return {
        endpoint,
        host: '127.0.0.1',
        port,
        monPort: port + 1,
        region: 'us-east-1',
        accessKey,
        secretKey,
        kmsKeyId,
        dir,
        logs: () => logText,
        stopGateway,
        startGateway,
        restart: async (opts) => {
          await stopGateway(opts);
          await startGateway();
        },
        stop: async () => {
          if (stopped) return;
          stopped = true;
          const s = await run('bash', [STOP, dir], 60_000, append);
          live.delete(dir);
          if (s.code !== 0) {
            throw new Error(`${describe('stop.sh', s, 60_000)}\n(cluster dir kept for inspection: ${dir})`);
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    // failed: clean up whatever started, keep the log tail for the error
    await run('bash', [STOP, dir, '--kill'], 30_000, () => {});
    live.delete(dir);
    rmSync(dir, { recursive: true, force: true });
    const portClash = /already in use|Address already in use|bind.*failed/i.test(r.output);
    failures.push(describe(`start.sh (ports ${port}/${port + 1})`, r, timeoutMs));
    if (!portClash) break;
  }
  throw new Error(`radosgw did not start:\n${failures.join('\n\n')}`);
}

/** The gateway's `storage` settings for a bucket of this radosgw, as a French data centre (residency checks pass). */
export const radosgwStorage = (rgw: Radosgw, bucket: string) => ({
  driver: 's3' as const,
  s3Endpoint: rgw.endpoint,
  s3AccessKey: rgw.accessKey,
  s3SecretKey: rgw.secretKey,
  s3Region: rgw.region,
  s3Bucket: bucket,
  country: 'FR',
  region: 'fr-par-test',
  provider: 'Ceph RGW (test)',
});
