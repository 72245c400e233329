/**
 * Each server of the join-page benchmark in a process of its own, the
 * benchmark's driver (Playwright) in a third: each server pays for its own
 * work and no more. The gateway's background work (its embedded ClickHouse,
 * stats sampling, fsyncs) does not stall the bare server, and neither shares
 * its event loop with the driver. Run as a child, a server answers `frames`
 * (its sockets' signaling frames, bench/join-page/steps.ts), `mint` (Vigie: a
 * token), `bot` (Vigie: the remote party as an RTP bot in the benchmark's room,
 * bench/join-page/rtp-bot.ts), `statements` (vigie-postgres) and `close` over IPC.
 *
 * Kinds: `bare` (bench/join-page/bare-server.ts); `vigie`, the gateway on its
 * embedded PGlite; `vigie-postgres`, the same on a PostgreSQL 15 server the
 * child starts (test/helpers/postgres.ts); `vigie-legacy`, the gateway of an
 * older checkout at `root` (its own test/helpers/gateway.ts and SDK bundle).
 */
import { fork, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { RunningBot } from './rtp-bot.js';
import type { Frame } from './steps.js';

export type ServerKind = 'bare' | 'vigie' | 'vigie-postgres' | 'vigie-legacy';

/** PostgreSQL statements the server ran since the previous call, by their first words (vigie-postgres). */
export interface StatementCount {
  total: number;
  byStatement: Record<string, number>;
}

export interface ServerProcess {
  url: string;
  /** The frames of each connection of the server, as it saw them. */
  connections: () => Promise<Frame[][]>;
  /** The longest event-loop stall of the server's process since the last call, in ms. */
  loopDelayMaxMs: () => Promise<number>;
  /** Vigie: an access token for the benchmark's room. */
  mint: (o: { identity: string; name: string }) => Promise<string>;
  /**
   * Vigie: an RTP bot joins the benchmark's room and sends the pre-encoded clip `file` (bench/join-page/rtp-bot.ts),
   * until the server closes; resolves once its producer has received media.
   */
  bot: (file: string) => Promise<{ producerId: string }>;
  /**
   * vigie-postgres: the statements PostgreSQL logged since the previous call. The first call turns on
   * `log_statement = all` (which costs the server a little: call it after the timed rounds) and returns nothing.
   */
  statements: () => Promise<StatementCount>;
  /**
   * vigie-postgres: what the same PostgreSQL server carries under pgbench's TPC-B-like script (7 statements a
   * transaction, BEGIN and END included), with 8 clients for 10 s, after the measures: its statements per second.
   */
  pgbench: () => Promise<{ tps: number; statementsPerSecond: number }>;
  /** Vigie: opens `n` new rooms one after the other, and closes each (a room's placement and its release). */
  openRooms: (n: number) => Promise<void>;
  /** The gateway's node heartbeat interval (s); undefined for bare and legacy servers. */
  heartbeatSeconds?: number;
  close: () => Promise<void>;
}

type Command = 'frames' | 'loop' | 'mint' | 'bot' | 'statements' | 'rooms' | 'pgbench' | 'close';

/** Each Vigie kind gets its own RTC port range, so that three gateways on one machine never race for a port. */
const PORTS: Record<ServerKind, [number, number]> = {
  bare: [0, 0],
  vigie: [40000, 40999],
  'vigie-postgres': [41000, 41999],
  'vigie-legacy': [42000, 42999],
};

export async function startServerProcess(kind: ServerKind, root?: string): Promise<ServerProcess> {
  const child = fork(fileURLToPath(import.meta.url), ['--child', kind, root ?? ''], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let next = 0;
  const waiting = new Map<number, { resolve: (result: any) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { id: number; result: unknown; error?: string }) => {
    const w = waiting.get(m.id);
    if (m.error === undefined) w?.resolve(m.result);
    else w?.reject(new Error(`the ${kind} server failed: ${m.error}`));
  });
  const call = <T>(cmd: Command, arg?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, { resolve, reject });
      void exited.then((code) => reject(new Error(`the ${kind} server exited (${code})`)));
      if (id > 0) child.send({ id, cmd, arg });
    });
  // id 0: the child's first message, its URL and heartbeat interval
  const { url, heartbeatSeconds } = await call<{ url: string; heartbeatSeconds?: number }>('frames');
  return {
    url,
    heartbeatSeconds,
    connections: () => call('frames'),
    loopDelayMaxMs: () => call('loop'),
    mint: (o) => call('mint', o),
    bot: (file) => call('bot', file),
    statements: () => call('statements'),
    openRooms: (n) => call('rooms', n),
    pgbench: () => call('pgbench'),
    close: async () => {
      child.send({ id: -1, cmd: 'close' });
      await exited;
    },
  };
}

if (process.argv[2] === '--child') {
  const kind = process.argv[3] as ServerKind;
  const { tapServers } = await import('./steps.js');
  const tap = tapServers();
  let server: {
    url: string;
    close: () => Promise<void>;
    mint?: ServerProcess['mint'];
    bot?: ServerProcess['bot'];
    statements?: () => Promise<StatementCount>;
    openRooms?: ServerProcess['openRooms'];
    pgbench?: ServerProcess['pgbench'];
    heartbeatSeconds?: number;
  };
  if (kind === 'bare') server = await (await import('./bare-server.js')).startBareServer();
  else {
    const pg =
      kind === 'vigie-postgres' ? await (await import('../../test/helpers/postgres.js')).startPostgres() : null;
    // The legacy gateway is the older checkout's own, with its own sources, SDK bundle and test helpers.
    const tree =
      kind === 'vigie-legacy' ? process.argv[4]! : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
    const helper = kind === 'vigie-legacy' ? path.join(tree, 'test/helpers/gateway.ts') : '';
    const { startGateway } = (
      helper ? await import(helper) : await import('../../test/helpers/gateway.js')
    ) as typeof import('../../test/helpers/gateway.js');
    const [rtcMinPort, rtcMaxPort] = PORTS[kind];
    // A gateway that fails to start must not leave its PostgreSQL server running after this process is gone.
    const gw = await startGateway({
      media: { rtcMinPort, rtcMaxPort },
      ...(pg ? { database: { url: pg.url } } : {}),
    }).catch(async (err) => {
      await pg?.stop();
      throw err;
    });
    const mint: ServerProcess['mint'] = (o) => gw.mint({ room: 'bench', grants: ['publish', 'subscribe'], ...o });
    let bot: RunningBot | undefined;
    // Its ffmpeg is this process's child: it goes with this process, however that ends.
    process.once('exit', () => bot?.ffmpeg.kill());
    server = {
      url: gw.url,
      close: async () => {
        await bot?.stop();
        await gw.close();
        await pg?.stop();
      },
      mint,
      bot: async (file) => {
        if (bot) throw new Error('the room has its bot already');
        const { startBot } = await import('./rtp-bot.js');
        bot = await startBot(tree, gw, { tenant: 'acme', room: 'bench', file });
        return { producerId: bot.producer.id };
      },
      statements: pg ? statementCounter(pg) : undefined,
      pgbench: pg ? () => pgbench(pg.port) : undefined,
      openRooms: async (n) => {
        for (let i = 0; i < n; i++) (await gw.app.sfu.getOrCreateRoom('acme', `bench-room-${i}`)).close('bench');
        await new Promise((r) => setTimeout(r, 1000)); // the placements are written after the room opens
      },
      heartbeatSeconds: (gw.config as { nodes?: { heartbeatSeconds: number } }).nodes?.heartbeatSeconds,
    };
  }
  // The benchmark is gone (it crashed, or was stopped): so is its server.
  process.on('disconnect', () => process.exit(1));
  const port = Number(new URL(server.url).port);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const answer = async (cmd: Command, arg?: any): Promise<unknown> => {
    if (cmd === 'frames') return tap.connections(port);
    if (cmd === 'mint') return server.mint!(arg);
    if (cmd === 'bot') return server.bot!(arg);
    if (cmd === 'statements') return server.statements!();
    if (cmd === 'rooms') return server.openRooms!(arg);
    if (cmd === 'pgbench') return server.pgbench!();
    const max = loop.max / 1e6;
    loop.reset();
    return max;
  };
  process.on('message', async ({ id, cmd, arg }: { id: number; cmd: Command; arg?: any }) => {
    if (cmd === 'close') {
      await server.close();
      process.exit(0);
    }
    let result: unknown;
    try {
      result = await answer(cmd, arg);
    } catch (e) {
      process.send!({ id, error: (e as Error).stack ?? String(e) });
      return;
    }
    process.send!({ id, result });
  });
  process.send!({ id: 0, result: { url: server.url, heartbeatSeconds: server.heartbeatSeconds } });
}

/** pgbench's TPC-B-like script on its own tables (scale 1) in the server's database. */
async function pgbench(port: number): Promise<{ tps: number; statementsPerSecond: number }> {
  const bin = '/usr/lib/postgresql/15/bin/pgbench';
  const conn = ['-h', '127.0.0.1', '-p', String(port), '-U', 'vigie'];
  const run = (args: string[]) => {
    const r = spawnSync(bin, [...conn, ...args, 'vigie'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pgbench ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  run(['-i', '-q', '-s', '1']);
  const out = run(['-c', '8', '-j', '2', '-T', '10']);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  return { tps: Math.round(tps), statementsPerSecond: Math.round(tps * 7) };
}

/**
 * Counts the statements a PostgreSQL server of test/helpers/postgres.ts runs, from its log: the first call turns on
 * `log_statement = all`; each call returns what was logged since the previous one. A statement is one `statement:`
 * (simple protocol) or `execute` (extended protocol: pg's parameterized queries) line.
 */
function statementCounter(pg: { url: string; dir: string }): () => Promise<StatementCount> {
  const log = path.join(pg.dir, 'log');
  let offset: number | undefined;
  return async () => {
    if (offset === undefined) {
      const { default: pgLib } = await import('pg');
      const client = new pgLib.Client({ connectionString: pg.url });
      await client.connect();
      await client.query(`ALTER SYSTEM SET log_statement = 'all'`);
      await client.query('SELECT pg_reload_conf()');
      await client.end();
      await new Promise((r) => setTimeout(r, 500)); // the postmaster signals its backends
      offset = readFileSync(log).length;
      return { total: 0, byStatement: {} };
    }
    const text = readFileSync(log).subarray(offset).toString('utf8');
    offset += Buffer.byteLength(text);
    const byStatement: Record<string, number> = {};
    let total = 0;
    for (const m of text.matchAll(/LOG: {2}(?:statement|execute [^:]*): (.*)/g)) {
      const key = m[1]!.replace(/\s+/g, ' ').trim().slice(0, 60);
      byStatement[key] = (byStatement[key] ?? 0) + 1;
      total++;
    }
    return { total, byStatement };
  };
}
