/**
 * Three Vigie nodes as separate processes, as the scale-out tests ask: one PostgreSQL server (Debian's 15),
 * one ClickHouse endpoint (chdb behind HTTP, its own process), one object store (Ceph RADOS Gateway), and N gateways
 * (dist/server/main.js, what operators run; refused when older than src/: run `bash scripts/setup.sh test`), each
 * bound to its own loopback address (127.0.0.2,
 * 127.0.0.3, …: all of 127/8 is local on Linux) for HTTP and media, with its own data directory and node id. A node
 * is killed the way a machine dies: SIGKILL to its process group (the gateway and its mediasoup workers).
 *
 * Every component is required: a missing one throws (startPostgres, startRadosgw and the node start say which).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SETTINGS } from '../../src/config/settings.js';
import { waitFor } from './browser.js';
import { startChdbHttp } from './chdbHttpServer.js';
import { closedPort } from './ports.js';
import { type PostgresServer, startPostgres } from './postgres.js';
import { type Radosgw, startRadosgw } from './radosgw.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SERVER = path.join(ROOT, 'dist/server/main.js');

/** The compiled gateway must be the sources': a stale one would test yesterday's code (scripts/setup.sh compiles). */
function assertCompiled(): void {
  const built = existsSync(SERVER) ? statSync(SERVER).mtimeMs : 0;
  const stale = execFileSync('find', ['src', 'tsconfig.json', 'tsconfig.build.json', '-newermt', `@${built / 1000}`], {
    cwd: ROOT,
    encoding: 'utf8',
  }).trim();
  if (!built || stale)
    throw new Error(`dist/server is missing or older than ${stale.split('\n')[0]}: run bash scripts/setup.sh test`);
}

export interface ClusterNode {
  /** `node-1`, `node-2`, … */
  id: string;
  /** The loopback address its HTTP server and its media sockets bind to, and that it announces in ICE candidates. */
  address: string;
  /** `http://127.0.0.N:PORT` */
  url: string;
  /** `ws://127.0.0.N:PORT/ws` */
  wsUrl: string;
  pid: number;
  /** Its VIGIE_DATA_DIR (recordings being written are under `recordings/active`: test/helpers/recording.ts). */
  dataDir: string;
  /** Everything it wrote to stdout and stderr so far (JSON log lines). */
  output: () => string;
  alive: () => boolean;
  /** SIGKILL to the node and its mediasoup workers; resolves once the gateway process is gone. */
  kill: () => Promise<void>;
}

export interface Cluster {
  pg: PostgresServer;
  clickhouseUrl: string;
  s3: Radosgw;
  nodes: ClusterNode[];
  /** The live nodes, in start order. */
  live: () => ClusterNode[];
  /** Stops every node (SIGKILL when SIGINT is not enough), then ClickHouse, the object store and PostgreSQL. */
  close: () => Promise<void>;
}

export interface ClusterOptions {
  /** The `tenants` of the config file every node reads (the same file: the nodes share one configuration). */
  tenants: unknown[];
  /** Settings for every node, as environment variables (they win over the defaults below). */
  env?: Record<string, string>;
  /** Settings of one node only (its index in start order, from 0), over `env`: e.g. each node its own region. */
  nodeEnv?: (index: number) => Record<string, string>;
  count?: number;
}

/** Webhook settings for tests across nodes: plain http to loopback receivers, quick polls and retries. */
export const WEBHOOK_ENV: Record<string, string> = {
  VIGIE_WEBHOOK_ALLOW_HTTP: 'true',
  VIGIE_WEBHOOK_ALLOW_PRIVATE: 'true',
  // Far above the receivers' delay: an attempt that times out would be sent again, legitimately, and blur which
  // repeats come from a kill.
  VIGIE_WEBHOOK_TIMEOUT_MS: '8000',
  // A killed node's deliveries are sent again by another once this has passed.
  VIGIE_WEBHOOK_LEASE_MS: '10000',
  VIGIE_WEBHOOK_POLL_MS: '200',
  VIGIE_WEBHOOK_BACKOFF_MS: '100',
};

/** Tenant `acme`: a key that mints tokens, optionally a DPO key, and one webhook endpoint per receiver (all events). */
export function clusterTenant(
  mint: { hash: string },
  receivers: Array<{ endpoint: string; url: string }>,
  secret: string,
  dpo?: { hash: string },
) {
  return {
    id: 'acme',
    apiKeys: [
      { id: 'acme01', hash: mint.hash, scopes: ['tokens:mint'] },
      ...(dpo ? [{ id: 'acmedpo1', hash: dpo.hash, scopes: ['dpo'] }] : []),
    ],
    webhooks: receivers.map((r) => ({ id: r.endpoint, url: r.url, secret, events: ['*'] })),
  };
}

/**
 * Starts one gateway process on `address`, resolves once it printed its start banner; rejects with its output when it
 * exits first or never gets there.
 */
async function startNode(id: string, address: string, env: Record<string, string>): Promise<ClusterNode> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `vigie-${id}-`));
  // detached: its own process group, so that kill() reaches its mediasoup workers too, as a machine's death would.
  const child: ChildProcess = spawn(process.execPath, ['--enable-source-maps', SERVER], {
    cwd: ROOT,
    // A fixed port, not 0: the node registers its public URL (where other nodes redirect joins) as it starts.
    env: {
      ...env,
      VIGIE_NODE_ID: id,
      VIGIE_HOST: address,
      VIGIE_PORT: String(await closedPort(address)),
      VIGIE_DATA_DIR: dataDir,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = once(child, 'exit');
  const alive = () => child.exitCode === null && child.signalCode === null;
  const kill = async () => {
    if (alive()) process.kill(-child.pid!, 'SIGKILL');
    await exited;
  };
  try {
    const banner = await waitFor(
      `${id} to start`,
      async () => text,
      (t) => /Vigie is running at/.test(t) || !alive(),
      // Three gateways starting at once on a loaded 2-core machine; a hung one fails here.
      180_000,
    );
    const url = /Vigie is running at (\S+)/.exec(banner)?.[1];
    if (!url) throw new Error(`${id} did not start:\n${banner.slice(-4000)}`);
    return {
      id,
      address,
      url,
      wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
      pid: child.pid!,
      dataDir,
      output: () => text,
      alive,
      kill: async () => {
        await kill();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await kill();
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  assertCompiled();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-cluster-'));
  const started: Partial<Cluster> & { nodes: ClusterNode[] } = { nodes: [] };
  let chdb: Awaited<ReturnType<typeof startChdbHttp>> | undefined;
  const close = async () => {
    // SIGINT: the gateway closes without waiting for calls to end (SIGTERM would drain). Killed if it hangs.
    await Promise.all(
      started.nodes.map(async (n) => {
        if (!n.alive()) return;
        try {
          process.kill(n.pid, 'SIGINT');
          await waitFor(
            `${n.id} to stop`,
            async () => n.alive(),
            (a) => !a,
            15_000,
          );
        } catch {
          // it did not stop in time: killed below
        }
        await n.kill();
      }),
    );
    await chdb?.stop();
    await started.s3?.stop();
    await started.pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [pg, ch, s3] = await Promise.all([
      startPostgres(),
      startChdbHttp(mkdtempSync(path.join(dir, 'chdb-'))),
      startRadosgw(),
    ]);
    Object.assign(started, { pg, s3 });
    chdb = ch;
    const configFile = path.join(dir, 'vigie.json');
    writeFileSync(configFile, JSON.stringify({ tenants: o.tenants }), { mode: 0o600 });
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      ...(process.env.XDG_CACHE_HOME ? { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME } : {}),
      ...(process.env.MEDIASOUP_WORKER_BIN ? { MEDIASOUP_WORKER_BIN: process.env.MEDIASOUP_WORKER_BIN } : {}),
      VIGIE_CONFIG_FILE: configFile,
      VIGIE_LOG_FORMAT: 'json',
      VIGIE_DATABASE_URL: pg.url,
      CLICKHOUSE_URL: ch.url,
      VIGIE_STORAGE_DRIVER: 's3',
      VIGIE_S3_ENDPOINT: s3.endpoint,
      VIGIE_S3_ACCESS_KEY: s3.accessKey,
      VIGIE_S3_SECRET_KEY: s3.secretKey,
      VIGIE_S3_REGION: s3.region,
      VIGIE_MEDIA_WORKERS: '1',
      // Fast enough for a test to see a node die, slow enough for three nodes on a loaded 2-core machine.
      VIGIE_NODES_HEARTBEAT_S: '1',
      VIGIE_NODES_DEAD_AFTER_S: '4',
      ...o.env,
    };
    // A misspelt variable is silently ignored by the gateway (each node would then use its own embedded engine).
    const count = o.count ?? 3;
    const known = new Set(SETTINGS.map((x) => x.env));
    const unknown = [env, ...Array.from({ length: count }, (_, i) => o.nodeEnv?.(i) ?? {})]
      .flatMap((e) => Object.keys(e))
      .filter((k) => /^(VIGIE|CLICKHOUSE)_/.test(k) && !known.has(k));
    if (unknown.length) throw new Error(`startCluster: not settings of src/config/settings.ts: ${unknown.join(', ')}`);
    const nodes = await Promise.all(
      Array.from({ length: count }, (_, i) => {
        const address = `127.0.0.${i + 2}`;
        // Each node its own address and port range: the media of two nodes can never be mistaken for one another.
        const minPort = 42000 + i * 500;
        return startNode(`node-${i + 1}`, address, {
          ...env,
          VIGIE_MEDIA_LISTEN_IP: address,
          VIGIE_MEDIA_ANNOUNCED_ADDRESS: address,
          VIGIE_MEDIA_RTC_MIN_PORT: String(minPort),
          VIGIE_MEDIA_RTC_MAX_PORT: String(minPort + 499),
          ...o.nodeEnv?.(i),
        }).then((n) => {
          started.nodes.push(n);
          return n;
        });
      }),
    );
    return {
      pg,
      clickhouseUrl: ch.url,
      s3,
      nodes,
      live: () => nodes.filter((n) => n.alive()),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The local TCP ports of the connections process `pid` holds open to `port` (from `ss`, run as root): which node a
 * request a receiver is holding came from.
 */
export function portsOf(pid: number, port: number): Set<number> {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  const ports = new Set<number>();
  for (const line of out.split('\n'))
    if (line.includes(`pid=${pid},`)) ports.add(Number(/:(\d+)\s+\S+:\d+\s/.exec(line)?.[1]));
  return ports;
}
