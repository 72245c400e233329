import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type Database, openDatabase } from '../../src/store/index.js';
import { closedPort } from './ports.js';

/**
 * A real PostgreSQL server from Debian's `postgresql` package, in a temporary
 * directory, on a loopback port: what production runs, for the tests that run
 * the control plane on a server rather than on the embedded PGlite.
 */
export interface PostgresServer {
  /** `postgres://vigie@127.0.0.1:PORT/vigie` */
  url: string;
  port: number;
  dir: string;
  /** Stops the server (`pg_ctl stop -m fast`) and removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** An outage: stops the server (its clients' connections are closed), keeping its data and port. */
  halt(): Promise<void>;
  /** Ends an outage: starts the server again on the same port with the same data. */
  resume(): Promise<void>;
}

const BIN = '/usr/lib/postgresql/15/bin';

/** Throws when the server binaries are missing: these tests must fail, never skip. */
function assertInstalled(): void {
  if (!existsSync(path.join(BIN, 'pg_ctl')))
    throw new Error(`PostgreSQL 15 is required by this test but ${BIN}/pg_ctl is missing: apt-get install postgresql`);
}

/** PostgreSQL refuses to run as root: as root, its tools run as the `postgres` user the package created. */
function pgTool(tool: string, args: string[]): { cmd: string; args: string[] } {
  const bin = path.join(BIN, tool);
  return process.getuid?.() === 0
    ? { cmd: 'runuser', args: ['-u', 'postgres', '--', bin, ...args] }
    : { cmd: bin, args };
}

function run(tool: string, args: string[]): void {
  const { cmd, args: full } = pgTool(tool, args);
  const r = spawnSync(cmd, full, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${tool} ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.stdout}`);
}

export async function startPostgres(): Promise<PostgresServer> {
  assertInstalled();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-pg-'));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const data = path.join(dir, 'data');
  const port = await closedPort();
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'vigie', '--no-sync', '-E', 'UTF8']);
  let running = false;
  const halt = () => {
    run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    running = false;
  };
  const start = () => {
    run('pg_ctl', [
      '-D',
      data,
      '-w',
      '-l',
      path.join(dir, 'log'),
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      'start',
    ]);
    running = true;
  };
  start();
  run('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'vigie', 'vigie']);
  let stopped = false;
  return {
    url: `postgres://vigie@127.0.0.1:${port}/vigie`,
    port,
    dir,
    halt: async () => halt(),
    resume: async () => start(),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        // A server halted by the test is already stopped.
        if (running) halt();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/**
 * For a `describe` block on `kind`: a store (PGlite in a temporary directory,
 * or a fresh PostgreSQL server) and a second node's connection to it (PGlite
 * is one process: the same instance). Filled in by beforeAll, closed by afterAll.
 */
export function useStore(kind: 'pglite' | 'postgres'): { db: Database; other: Database; dir: string } {
  const s = {} as { db: Database; other: Database; dir: string; server?: PostgresServer };
  beforeAll(async () => {
    s.dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-store-'));
    if (kind === 'postgres') s.server = await startPostgres();
    s.db = await openDatabase({ url: s.server?.url, dataDir: path.join(s.dir, 'postgres') });
    s.other = s.server ? await openDatabase({ url: s.server.url, dataDir: s.dir }) : s.db;
  });
  afterAll(async () => {
    if (s.other !== s.db) await s.other?.close();
    await s.db?.close();
    await s.server?.stop();
    rmSync(s.dir, { recursive: true, force: true });
  });
  return s;
}
