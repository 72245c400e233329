/**
 * Time to the first remote frame: Vigie's join page against a minimal page on
 * bare mediasoup (bench/join-page/), in Chromium on loopback, in alternating
 * rounds. Each round loads each page cold (a new browser context: empty cache)
 * then warm (a second load in the same context). The measure runs from
 * navigation start, or from the click on "Join" when the page has a pre-join
 * screen, to the first decoded frame of the remote video. The remote party is
 * a page of the same kind already publishing camera and mic in each server,
 * in another browser, for the whole run.
 *
 * The instrumentation is the same script in both pages, injected before any
 * of theirs: it notes when a WebSocket opens and reads the first frame of each
 * received video track with a MediaStreamTrackProcessor (frames reach it as
 * they are decoded, whether or not the page shows them). It also records the
 * pages' signaling frames, and the servers theirs, for the time of each step
 * (bench/join-page/steps.ts). Each server runs in a process of its own, and
 * this one drives the browsers (bench/join-page/server-process.ts).
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, joinThroughPage, launchBrowser, waitFor } from '../test/helpers/browser.js';
import { startServerProcess } from './join-page/server-process.js';
import { type Frame, type Step, STEP_NAMES, type StepName, steps } from './join-page/steps.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
/** The pre-join screen's button, in either language; the bare page's is named "Join" too. */
const JOIN_BUTTON = /^(join|rejoindre)\b/i;
/** Placed by the bench just before it clicks "Join": the start of the measure when present. */
const CLICK_MARK = 'bench:join-click';

interface Sample {
  /**
   * ms from navigation start: the click (0 without a pre-join screen), the page's HTML received, its first script
   * run (this instrumentation: the previous page is gone by then), the WebSocket created and open, the remote video
   * track created (its consumer exists in the page), the first remote frame decoded.
   */
  start: number;
  html: number;
  firstScript: number;
  wsCreated: number;
  wsOpen: number;
  track: number;
  frame: number;
  /** Each signaling request on the way to the frame, as the page and the server saw it (ms from the start). */
  steps: Map<StepName, Step>;
  /** The longest event-loop stall of the server's process, from the click to the frame. */
  loopDelayMaxMs: number;
}

/** What the page reports: times from its navigation start, and its sockets' frames on the wall clock. */
type PageSample = Pick<Sample, 'firstScript' | 'wsCreated' | 'wsOpen' | 'track' | 'frame'> & { frames: Frame[] };

/** Runs in every measured page before its own scripts. */
function instrument(): void {
  const firstScript = performance.now();
  const bench: {
    wsCreated?: number;
    wsOpen?: number;
    frames: Frame[];
    frame?: Promise<PageSample>;
  } = { frames: [] };
  const wallClock = () => performance.timeOrigin + performance.now();
  const parse = (raw: unknown) => {
    try {
      return JSON.parse(String(raw));
    } catch {
      return undefined;
    }
  };
  (window as any).bench = bench;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      bench.wsCreated ??= performance.now();
      this.addEventListener('open', () => (bench.wsOpen ??= performance.now()));
      // Every signaling frame, for the step timings (bench/join-page/steps.ts): the same on both pages.
      this.addEventListener('message', (ev) => bench.frames.push({ t: wallClock(), dir: 'in', msg: parse(ev.data) }));
    }
    override send(data: string) {
      bench.frames.push({ t: wallClock(), dir: 'out', msg: parse(data) });
      super.send(data);
    }
  };
  const Processor = (window as any).MediaStreamTrackProcessor;
  bench.frame = new Promise((resolve, reject) => {
    if (typeof Processor !== 'function') return reject(new Error('this browser has no MediaStreamTrackProcessor'));
    const NativePeerConnection = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends NativePeerConnection {
      constructor(...args: ConstructorParameters<typeof RTCPeerConnection>) {
        super(...args);
        this.addEventListener('track', ({ track }) => {
          if (track.kind !== 'video') return;
          const created = performance.now();
          // A clone, so that stopping the reader cannot touch the page's own track.
          const copy = track.clone();
          const reader = new Processor({ track: copy }).readable.getReader();
          void reader.read().then(({ value }: { value?: { close(): void } }) => {
            const frame = performance.now();
            value?.close();
            copy.stop();
            resolve({
              firstScript,
              wsCreated: bench.wsCreated ?? Number.NaN,
              wsOpen: bench.wsOpen ?? Number.NaN,
              track: created,
              frame,
              frames: bench.frames,
            });
          }, reject);
        });
      }
    };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// Each server in its own process (bench/join-page/server-process.ts).
const [gw, bare] = await Promise.all([startServerProcess('vigie'), startServerProcess('bare')]);
const servers = { bare, vigie: gw };
let seq = 0;
const targets = {
  bare: async (prejoin: boolean) => `${bare.url}/${prejoin ? '?prejoin=1' : ''}`,
  vigie: async () => `${gw.url}/join?token=${await gw.mint({ identity: `viewer-${++seq}`, name: 'Viewer' })}`,
};
type Target = keyof typeof targets;

// The remote party: one page on each server, publishing before the first measure and until the last.
const remote = await launchBrowser();
const vigieRemote = await remote.context.newPage();
await joinThroughPage(vigieRemote, `${gw.url}/join?token=${await gw.mint({ identity: 'remote', name: 'Remote' })}`);
const bareRemote = await remote.context.newPage();
await bareRemote.goto(bare.url);
await waitFor(
  'the remote parties to publish',
  async () => [
    await vigieRemote.evaluate(() =>
      (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'published'),
    ),
    await bareRemote.evaluate(() => (window as any).bare.published),
  ],
  (v) => v.every(Boolean),
  60_000,
);
// A Vigie page with a pre-join screen would have waited for its "Join" click; it has not published then.
const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });

/** Loads the page, clicks "Join" if it has a pre-join screen, and waits for the first remote frame. */
async function measure(page: Page, target: Target, prejoin: boolean, kind: 'cold' | 'warm'): Promise<Sample> {
  // The server's longest event-loop stall is read from the click (or navigation) to the frame: reset it now.
  if (!prejoin) await servers[target].loopDelayMaxMs();
  await page.goto(await targets[target](prejoin), { waitUntil: 'commit' });
  if (prejoin) {
    const button = page.getByRole('button', { name: JOIN_BUTTON });
    await button.waitFor({ state: 'visible', timeout: 30_000 });
    await servers[target].loopDelayMaxMs();
    // The measure starts when the click reaches the button. A real click (Playwright's), once the button is enabled:
    // Vigie's is disabled in the HTML until its script handles it.
    await button.evaluate(
      (el: HTMLElement, mark) =>
        el.addEventListener('click', () => performance.mark(mark), { capture: true, once: true }),
      CLICK_MARK,
    );
    await button.click({ timeout: 30_000 });
  }
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(async () => {
      // What the page got to: its events (Vigie's page reports them) and its signaling, for the report.
      const seen = await page
        .evaluate(() => ({
          events: ((window as any).vigieEvents ?? []).map((e: { type: string }) => e.type),
          status: document.getElementById('status')?.textContent,
          button: document.querySelector('button')?.outerHTML,
          ws: [(window as any).bench.wsCreated, (window as any).bench.wsOpen].map(Math.round),
          frames: ((window as any).bench.frames as Frame[]).map(
            (f) => `${f.dir} ${f.msg?.method ?? ''}${f.msg?.id ?? ''}${(f.msg as any)?.ok === false ? ' error' : ''}`,
          ),
        }))
        .catch((e: Error) => e.message);
      reject(new Error(`${target} ${kind}: no remote frame in 30 s; the page saw ${JSON.stringify(seen)}`));
    }, 30_000).unref(),
  );
  const { frames: _early, ...got } = await Promise.race([
    page.evaluate(() => (window as any).bench.frame as Promise<PageSample>),
    timeout,
  ]);
  const loopDelayMaxMs = await servers[target].loopDelayMaxMs();
  const marks = await page.evaluate(
    (mark) => ({
      origin: performance.timeOrigin,
      start: performance.getEntriesByName(mark)[0]?.startTime ?? 0,
      html: (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming).responseEnd,
      // Read now rather than with the frame: the last answers can come just after it.
      frames: (window as any).bench.frames as Frame[],
    }),
    CLICK_MARK,
  );
  const { origin, frames, ...rest } = marks;
  const server = await servers[target].connections();
  return {
    ...rest,
    ...got,
    steps: steps(frames, server, origin + rest.start),
    loopDelayMaxMs,
  };
}

/** A new browser context (an empty cache) whose pages run the instrumentation first. */
async function instrumentedContext() {
  const context = await browser.newContext();
  // tsx compiles named functions with esbuild's `__name` helper, which the page does not have.
  await context.addInitScript({ content: 'globalThis.__name ??= (f) => f;' });
  await context.addInitScript(instrument);
  return context;
}

/** One cold load (new context) then one warm load (same context) of a target. */
async function round(target: Target, prejoin: boolean): Promise<{ cold: Sample; warm: Sample }> {
  const context = await instrumentedContext();
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${target}] page error: ${e.message}`));
  try {
    const cold = await measure(page, target, prejoin, 'cold');
    await new Promise((r) => setTimeout(r, 1000)); // let the call settle before it is left
    const warm = await measure(page, target, prejoin, 'warm');
    await new Promise((r) => setTimeout(r, 1000));
    return { cold, warm };
  } finally {
    await context.close();
  }
}

/** Whether Vigie's page shows a "Join" button before its first remote frame: then both pages are measured from the click. */
async function hasPrejoin(): Promise<boolean> {
  const context = await instrumentedContext();
  const page = await context.newPage();
  await page.goto(await targets.vigie());
  const button = page.getByRole('button', { name: JOIN_BUTTON });
  const first = await Promise.race([
    page.evaluate(() => (window as any).bench.frame.then(() => 'frame')),
    button.waitFor({ state: 'visible', timeout: 30_000 }).then(
      () => 'button',
      () => 'none',
    ),
  ]);
  await context.close();
  return first === 'button';
}

const prejoin = await hasPrejoin();
console.error(`[join-page] measured from ${prejoin ? 'the click on "Join"' : 'navigation start'}`);
// A round of each, not counted: the servers' and the browser's code paths warm up.
await round('bare', prejoin);
await round('vigie', prejoin);

/** Each step as page sent / server received / server answered / page had the answer, in ms from the start. */
const fmtStep = (st: Step | undefined) =>
  [st?.sent, st?.received, st?.answered, st?.done].map((t) => (t === undefined ? '-' : Math.round(t))).join('/');
const fmtSteps = (s: Sample) =>
  `${STEP_NAMES.map((n) => `${n} ${fmtStep(s.steps.get(n))}`).join(', ')}; server loop stall max ${Math.round(s.loopDelayMaxMs)} ms`;

const results: Record<Target, { cold: Sample[]; warm: Sample[] }> = {
  bare: { cold: [], warm: [] },
  vigie: { cold: [], warm: [] },
};
for (let i = 0; i < ROUNDS; i++) {
  // Alternating which goes first cancels a drift in the machine's load.
  for (const target of (i % 2 ? ['vigie', 'bare'] : ['bare', 'vigie']) as Target[]) {
    const r = await round(target, prejoin);
    results[target].cold.push(r.cold);
    results[target].warm.push(r.warm);
    const fmt = (s: Sample) =>
      `frame ${Math.round(s.frame - s.start)} ms (html ${Math.round(s.html)}, script ${Math.round(s.firstScript)}, ws ${Math.round(s.wsCreated - s.start)}–${Math.round(s.wsOpen - s.start)}, track ${Math.round(s.track - s.start)})`;
    console.error(`[join-page] round ${i + 1} ${target.padEnd(5)} cold ${fmt(r.cold)}, warm ${fmt(r.warm)}`);
    console.error(
      `[join-page]   steps ${target.padEnd(5)} cold ${fmtSteps(r.cold)}\n[join-page]   steps ${target.padEnd(5)} warm ${fmtSteps(r.warm)}`,
    );
  }
}

await browser.close();
await remote.close();
await bare.close();
await gw.close();

const summary = (kind: 'cold' | 'warm') => {
  const ms = (t: Target, what: 'frame' | 'wsOpen' | 'html' | 'track') =>
    Math.round(median(results[t][kind].map((s) => s[what] - s.start)));
  const frame = { bare: ms('bare', 'frame'), vigie: ms('vigie', 'frame') };
  return {
    bareMs: frame.bare,
    vigieMs: frame.vigie,
    ratio: Number((frame.vigie / frame.bare).toFixed(3)),
    htmlMs: { bare: ms('bare', 'html'), vigie: ms('vigie', 'html') },
    wsOpenMs: { bare: ms('bare', 'wsOpen'), vigie: ms('vigie', 'wsOpen') },
    trackMs: { bare: ms('bare', 'track'), vigie: ms('vigie', 'track') },
    // Median of each step's four times (page sent / server received / server answered / page had the answer).
    steps: Object.fromEntries(
      (['bare', 'vigie'] as const).map((t) => [
        t,
        Object.fromEntries(
          STEP_NAMES.map((n) => {
            const of = (k: keyof Step) => {
              const xs = results[t][kind].map((s) => s.steps.get(n)?.[k]).filter((x): x is number => x !== undefined);
              return xs.length ? Math.round(median(xs)) : undefined;
            };
            return [n, `${of('sent') ?? '-'}/${of('received') ?? '-'}/${of('answered') ?? '-'}/${of('done') ?? '-'}`];
          }),
        ),
      ]),
    ),
    loopDelayMaxMs: {
      bare: Math.round(median(results.bare[kind].map((s) => s.loopDelayMaxMs))),
      vigie: Math.round(median(results.vigie[kind].map((s) => s.loopDelayMaxMs))),
    },
  };
};
console.log(
  JSON.stringify({
    bench: 'join-page',
    from: prejoin ? 'click on Join' : 'navigation start',
    to: 'first decoded remote video frame',
    rounds: ROUNDS,
    cold: summary('cold'),
    warm: summary('warm'),
    target: '≤ 1.1',
  }),
);
process.exit(0);
