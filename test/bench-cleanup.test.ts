import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'vitest';
import { waitFor } from './helpers/browser.js';
import { tempDir } from './helpers/unit.js';

// The benchmarks' temporary folders (a clip, ClickHouse data, exports: up to gigabytes) are removed when a bench
// ends, fails or is interrupted. Each run below gets its own TMPDIR, so that what it leaves there is its own, whatever
// else runs on the machine meanwhile.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'bench');

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** The bench's temporary folders, as it announced them on stderr. */
  folders: () => string[];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function withoutSuiteDatabase(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { VIGIE_TEST_DATABASE: _, ...rest } = env;
  return rest;
}

function run(args: string[], tmp: string, env: Record<string, string> = {}): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    cwd: root,
    // A bench is a program of its own, outside the suite: the suite's switch to its PostgreSQL server
    // (test:postgres) names a server only vitest's global setup can hand over, so the bench runs embedded.
    env: { ...withoutSuiteDatabase(process.env), ...env, TMPDIR: tmp },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  // 'close', not 'exit': the process's last words on stderr may still be in the pipe when it has exited.
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const folders = () => [...stderr.matchAll(/\[bench\] temporary folder (\S+)/g)].map((m) => m[1]!);
  return { child, stdout: () => stdout, stderr: () => stderr, folders, exit };
}

/** Caches kept on purpose across processes: tsx's compiled files, the embedded PostgreSQL cluster gateways copy. */
const CACHES = /^(tsx-|vigie-pglite-template-)/;
/** What a run left in its TMPDIR besides the caches. */
const leftIn = (tmp: string) => readdirSync(tmp).filter((f) => !CACHES.test(f));

/**
 * A TMPDIR for one run, with the machine's caches when it has them, or the run would spend most of its time filling
 * them: tsx's shared by a link, the PostgreSQL template copied (test/helpers/pgliteTemplate.ts: a gateway's cluster
 * is copied from it, and a copy of a link would open the template itself).
 */
function privateTmp(): string {
  const tmp = tempDir('bench-tmp');
  for (const f of readdirSync(os.tmpdir()).filter((f) => CACHES.test(f))) {
    if (f.startsWith('tsx-')) symlinkSync(path.join(os.tmpdir(), f), path.join(tmp, f));
    else cpSync(path.join(os.tmpdir(), f), path.join(tmp, f), { recursive: true });
  }
  return tmp;
}

function assertCleanedUp(r: Run, tmp: string, atLeast = 1): void {
  const folders = r.folders();
  assert.ok(folders.length >= atLeast, `the bench announced no temporary folder; its stderr:\n${r.stderr()}`);
  for (const f of folders) {
    assert.equal(path.dirname(f), tmp, `${f} is not under the run's TMPDIR`);
    assert.equal(existsSync(f), false, `${f} was left behind`);
  }
  assert.deepEqual(leftIn(tmp), []);
}

// Each run is a small process of its own with its own TMPDIR. One after the other: `tempDir` removes its folder
// when the test that made it ends, and in concurrent tests the global `onTestFinished` can attach to another test,
// which removed a running test's TMPDIR under it (CI run of 8c006cf: scandir ENOENT).
describe('benchTempDir removes its folder however the process ends', () => {
  const common = path.join(benchDir, 'common.ts');
  const script = (then: string) =>
    `const { benchTempDir } = await import(${JSON.stringify(common)});
     const { writeFileSync } = await import('node:fs');
     const dir = benchTempDir('probe');
     writeFileSync(dir + '/data', 'x'.repeat(1 << 16));
     ${then}`;
  const cases: Array<[string, string, (e: Awaited<Run['exit']>) => void]> = [
    // The end of a script is the benches' own case, below.
    ['on process.exit', 'process.exit(3);', (e) => assert.equal(e.code, 3)],
    [
      'on a failure (a rejection at top level, as a failed `await` in a bench)',
      "await new Promise((_, reject) => setTimeout(() => reject(new Error('bench failed')), 1));",
      (e) => assert.equal(e.code, 1),
    ],
  ];
  for (const [when, then, exited] of cases)
    test(when, async () => {
      const tmp = privateTmp();
      const r = run(['--input-type=module', '-e', script(then)], tmp);
      exited(await r.exit);
      assertCleanedUp(r, tmp);
    });

  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    test(`on ${signal}, and the process still dies by it`, async () => {
      const tmp = privateTmp();
      const r = run(['--input-type=module', '-e', script("console.log('ready'); setInterval(() => {}, 1000);")], tmp);
      await waitFor(
        'the script to be waiting, its folder made',
        async () => ({ ready: r.stdout().includes('ready'), folders: r.folders().length }),
        (s) => s.ready && s.folders === 1,
        120_000,
      );
      assert.equal(existsSync(r.folders()[0]!), true);
      r.child.kill(signal);
      assert.deepEqual(await r.exit, { code: null, signal });
      assertCleanedUp(r, tmp);
    });
});

describe('the benchmarks', () => {
  test('none makes a temporary folder of its own: they all use benchTempDir', () => {
    const files = readdirSync(benchDir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    assert.ok(files.length >= 8);
    const offenders = files.filter(
      (f) => f !== 'common.ts' && /tmpdir\(|\/tmp\b/.test(readFileSync(path.join(benchDir, f), 'utf8')),
    );
    assert.deepEqual(offenders, []);
  });

  // The light benches run for real, in a tiny mode; the others (Chromium, Ceph, hundreds of consumers) are covered
  // by the test above and by benchTempDir's own tests.
  const tiny: Array<[string, Record<string, string>]> = [
    ['writer-throughput', { BENCH_ROWS: '2000', BENCH_ROUNDS: '1' }],
    [
      'telemetry-overhead',
      {
        BENCH_ROUNDS: '1',
        BENCH_PRODUCERS: '1',
        BENCH_CONSUMERS_PER_PRODUCER: '1',
        BENCH_CLIP_S: '1',
        BENCH_SETTLE_MS: '0',
        BENCH_MEASURE_MS: '200',
        BENCH_STATS_INTERVAL_MS: '1000',
      },
    ],
  ];
  for (const [bench, env] of tiny)
    test(`${bench} leaves nothing in the temporary directory`, async () => {
      const tmp = privateTmp();
      const r = run([path.join(benchDir, `${bench}.ts`)], tmp, env);
      const { code } = await r.exit;
      assert.equal(code, 0, r.stderr());
      assert.equal(JSON.parse(r.stdout().trim().split('\n').at(-1)!).bench, bench);
      assertCleanedUp(r, tmp);
    });
});
