/**
 * Control-plane cost per join (issue #13): time from the click on "Join" to the
 * first decoded remote video frame, in Chromium, against three gateways in one
 * run, in interleaved rounds (the join-page measure, bench/join-page/measure.ts):
 *
 * - `postgres`: the gateway with its control plane on a PostgreSQL 15 server
 *   (Debian's, started by the bench: test/helpers/postgres.ts);
 * - `pglite`: the same gateway on its embedded PGlite (the default);
 * - `single`: the single-node build from before the control plane existed,
 *   commit d02fe2d^ (its tree has no src/store: rooms, tenants and keys live in
 *   memory and in files), checked out by the bench into a temporary git
 *   worktree that shares this checkout's node_modules, removed at the end.
 *
 * Each gateway runs in its own process (bench/join-page/server-process.ts),
 * with a remote party already publishing in its room. The remote party is, by
 * default, an RTP bot (bench/join-page/rtp-bot.ts) created inside each
 * gateway's process: ffmpeg sends the same pre-encoded VP8 clip, every frame a
 * key frame, to all three, so the first frame follows a consumer's resume by at
 * most one frame interval whatever the target. With a Chromium page as the
 * remote (`BENCH_REMOTE=chromium`, as before 2026-11-30), each target had its
 * own live encoder whose key frame, sent on request at that page's bandwidth
 * estimate, was most of the spread between rounds, and a per-target effect
 * that rotating the order does not cancel. Afterwards the bench
 * counts the statements the PostgreSQL server runs for one join, and per
 * heartbeat of an idle node (its log with `log_statement = all`), for the
 * projection to N nodes in bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, launchBrowser } from '../test/helpers/browser.js';
import {
  fmtSample,
  fmtSteps,
  joinPageMeasurer,
  medianMs,
  type Sample,
  stepMedians,
  vigiePublished,
  vigieRemote,
  waitPublished,
} from './join-page/measure.js';
import { benchTempDir, median, ratioInterval, rotated } from './common.js';
import { BOT_FPS, encodeBotClip } from './join-page/rtp-bot.js';
import { type ServerProcess, type StatementCount, startServerProcess } from './join-page/server-process.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
/** Joins counted for the statements per join (each round is two joins: cold and warm). */
const COUNT_ROUNDS = Number(process.env.BENCH_COUNT_ROUNDS ?? 3);
/** The last commit before the control plane (d02fe2d): the single-node build. */
/** Rooms opened and closed for the statements per room. */
const COUNT_ROOMS = 20;
const SINGLE_NODE_COMMIT = process.env.BENCH_SINGLE_NODE_COMMIT ?? 'd02fe2d^';
/** The remote party: `bot` (the default: the same RTP stream into every room) or `chromium` (a page per room). */
const REMOTE = process.env.BENCH_REMOTE ?? 'bot';
if (REMOTE !== 'bot' && REMOTE !== 'chromium') throw new Error(`BENCH_REMOTE is bot or chromium, not ${REMOTE}`);

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const git = (...args: string[]) => {
  const r = spawnSync('git', ['-C', repo, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout.trim();
};

/** The single-node build's tree in a temporary worktree, with this checkout's node_modules and its own SDK bundle. */
function checkOutSingleNode(): { root: string; commit: string; remove: () => void } {
  const parent = benchTempDir('single');
  const root = path.join(parent, 'tree');
  git('worktree', 'add', '--detach', root, SINGLE_NODE_COMMIT);
  const remove = () => {
    spawnSync('git', ['-C', repo, 'worktree', 'remove', '--force', root]);
    rmSync(parent, { recursive: true, force: true });
    spawnSync('git', ['-C', repo, 'worktree', 'prune']);
  };
  try {
    symlinkSync(realpathSync(path.join(repo, 'node_modules')), path.join(root, 'node_modules'));
    // Its join page serves its own SDK bundle (dist/public), built by its own script.
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/build-sdk.ts'], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`building the single-node SDK bundle failed: ${r.stderr}`);
    return { root, commit: git('-C', root, 'rev-parse', '--short', 'HEAD'), remove };
  } catch (e) {
    remove();
    throw e;
  }
}

/** Median ms from the page's answer to the video consumer's resume to its first decoded frame. */
const resumeToFrame = (samples: Sample[]) => {
  const xs = samples.flatMap((s) => {
    const resumed = s.steps.get('resume video')?.done;
    return resumed === undefined ? [] : [s.frame - s.start - resumed];
  });
  return xs.length ? Math.round(median(xs)) : undefined;
};

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const loadAtStart = loadavg();
const single = checkOutSingleNode();
const servers: Record<'postgres' | 'pglite' | 'single', ServerProcess> = {} as never;
const remote = REMOTE === 'chromium' ? await launchBrowser() : undefined;
const clip = REMOTE === 'bot' ? await encodeBotClip() : undefined;
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
try {
  [servers.postgres, servers.pglite, servers.single] = await Promise.all([
    startServerProcess('vigie-postgres'),
    startServerProcess('vigie'),
    startServerProcess('vigie-legacy', single.root),
  ]);
  type Target = keyof typeof servers;
  const names = Object.keys(servers) as Target[];
  let seq = 0;
  const url = (t: Target, identity: string) =>
    servers[t].mint({ identity, name: identity }).then((token) => `${servers[t].url}/join?token=${token}`);
  const targets = Object.fromEntries(
    names.map((t) => [t, { server: servers[t], url: () => url(t, `viewer-${++seq}`) }]),
  ) as Record<Target, { server: ServerProcess; url: () => Promise<string> }>;

  // The remote party, in each room, publishing before the first measure and until the last.
  if (remote) {
    const remotes = await Promise.all(names.map(async (t) => vigieRemote(remote.context, await url(t, 'remote'))));
    await waitPublished(remotes.map((page) => () => vigiePublished(page)));
  } else await Promise.all(names.map((t) => servers[t].bot(clip!)));
  console.error(`[control-plane] remote party: ${REMOTE === 'bot' ? `RTP bot (${clip})` : 'Chromium pages'}`);
  const { round, hasPrejoin } = joinPageMeasurer(browser, targets);
  const prejoin = await Promise.all(names.map(hasPrejoin));
  if (new Set(prejoin).size !== 1) throw new Error(`the pages differ in their pre-join screen: ${prejoin}`);
  console.error(`[control-plane] measured from ${prejoin[0] ? 'the click on "Join"' : 'navigation start'}`);
  for (const t of names) await round(t, prejoin[0]!); // warm-up, not counted

  const results = Object.fromEntries(names.map((t) => [t, { cold: [] as Sample[], warm: [] as Sample[] }])) as Record<
    Target,
    { cold: Sample[]; warm: Sample[] }
  >;
  for (let i = 0; i < ROUNDS; i++) {
    // Rotating which goes first cancels a drift in the machine's load.
    for (const t of rotated(names, i)) {
      const r = await round(t, prejoin[0]!);
      results[t].cold.push(r.cold);
      results[t].warm.push(r.warm);
      console.error(
        `[control-plane] round ${i + 1} ${t.padEnd(8)} cold ${fmtSample(r.cold)}, warm ${fmtSample(r.warm)}`,
      );
      console.error(
        `[control-plane]   steps cold ${fmtSteps(r.cold)}\n[control-plane]   steps warm ${fmtSteps(r.warm)}`,
      );
    }
  }

  // PostgreSQL statements: an idle node first (heartbeats and background jobs), then joins.
  const pg = servers.postgres;
  await pg.statements(); // turns on log_statement
  const idleSeconds = 5 * (pg.heartbeatSeconds ?? 2);
  const idleStart = Date.now();
  await new Promise((r) => setTimeout(r, idleSeconds * 1000));
  const idle = await pg.statements();
  const idleRate = idle.total / ((Date.now() - idleStart) / 1000);
  for (let i = 0; i < COUNT_ROUNDS; i++) await round('postgres', prejoin[0]!);
  const joins = await pg.statements();
  const joinCount = 2 * COUNT_ROUNDS;
  // What the joins caused: the statements an idle node does not run (its periodic ones vary too much with the
  // machine's load to be subtracted as a rate).
  const caused = (c: StatementCount) =>
    Object.entries(c.byStatement).reduce((sum, [k, v]) => (k in idle.byStatement ? sum : sum + v), 0);
  const perJoin = caused(joins) / joinCount;
  // The joins above go to a room already open; a room's first join also places it (and its close releases it).
  await pg.openRooms(COUNT_ROOMS);
  const rooms = await pg.statements();
  const perRoom = caused(rooms) / COUNT_ROOMS;
  const top = (c: StatementCount, per: number) =>
    Object.fromEntries(
      Object.entries(c.byStatement)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 15)
        .map(([k, v]) => [k, Number((v / per).toFixed(2))]),
    );

  const pgbench = await pg.pgbench();

  const summary = (kind: 'cold' | 'warm') => {
    const frameOf = (t: Target) => results[t][kind].map((s) => s.frame - s.start);
    const frame = Object.fromEntries(names.map((t) => [t, medianMs(results[t][kind], 'frame')])) as Record<
      Target,
      number
    >;
    return {
      frameMs: frame,
      ratioPostgresToPglite: Number((frame.postgres / frame.pglite).toFixed(3)),
      ratioPostgresToPgliteCi95: ratioInterval(frameOf('postgres'), frameOf('pglite')),
      ratioPostgresToSingleNodeCi95: ratioInterval(frameOf('postgres'), frameOf('single')),
      ratioPostgresToSingleNode: Number((frame.postgres / frame.single).toFixed(3)),
      ratioPgliteToSingleNode: Number((frame.pglite / frame.single).toFixed(3)),
      wsOpenMs: Object.fromEntries(names.map((t) => [t, medianMs(results[t][kind], 'wsOpen')])),
      // What the remote party decides: from the page's answer to `resumeConsumer` to the first decoded frame (the
      // recv transport's DTLS, the next key frame, the decoder). The bot's stream makes it the same on every target.
      resumeToFrameMs: Object.fromEntries(names.map((t) => [t, resumeToFrame(results[t][kind])])),
      steps: Object.fromEntries(names.map((t) => [t, stepMedians(results[t][kind])])),
    };
  };
  console.log(
    JSON.stringify({
      bench: 'control-plane',
      from: prejoin[0] ? 'click on Join' : 'navigation start',
      to: 'first decoded remote video frame',
      singleNodeCommit: single.commit,
      remote:
        REMOTE === 'bot' ? `RTP bot: VP8 640x480 ${BOT_FPS} fps, every frame a key frame` : 'Chromium page per target',
      rounds: ROUNDS,
      cold: summary('cold'),
      warm: summary('warm'),
      postgresStatements: {
        heartbeatSeconds: pg.heartbeatSeconds,
        idlePerSecond: Number(idleRate.toFixed(2)),
        idlePerHeartbeat: Number((idleRate * (pg.heartbeatSeconds ?? 2)).toFixed(2)),
        idleByStatementPerHeartbeat: top(idle, idleSeconds / (pg.heartbeatSeconds ?? 2)),
        joins: joinCount,
        perJoin: Number(perJoin.toFixed(1)),
        perJoinByStatement: top(joins, joinCount),
        perRoomOpenAndClose: Number(perRoom.toFixed(1)),
        perRoomByStatement: top(rooms, COUNT_ROOMS),
      },
      pgbench,
      loadavg: { start: loadAtStart, end: loadavg() },
      target: 'ratios ≤ 1.1',
    }),
  );
} finally {
  await browser.close();
  await remote?.close();
  for (const s of Object.values(servers)) await s?.close();
  single.remove();
  if (clip) rmSync(path.dirname(clip), { recursive: true, force: true });
}
process.exit(0);
