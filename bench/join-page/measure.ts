/**
 * The join-page measure, shared by the benchmarks that time a join to its
 * first remote frame in Chromium (bench/join-page.ts: Vigie against bare
 * mediasoup; bench/control-plane.ts: Vigie on its three control planes). A
 * target is a server process (bench/join-page/server-process.ts) and the URL
 * of its page; a round loads it cold (a new browser context: empty cache) then
 * warm (a second load in the same context), from navigation start or from the
 * click on "Join" when the page has a pre-join screen, to the first decoded
 * frame of the remote video.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { joinThroughPage, waitFor } from '../../test/helpers/browser.js';
import { median } from '../common.js';
import type { ServerProcess } from './server-process.js';
import { type Frame, type Step, STEP_NAMES, type StepName, steps } from './steps.js';

/** The pre-join screen's button, in either language; the bare page's is named "Join" too. */
export const JOIN_BUTTON = /^(join|rejoindre)\b/i;
/** Placed by the bench just before it clicks "Join": the start of the measure when present. */
const CLICK_MARK = 'bench:join-click';

export interface Sample {
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
  /** The first decoded frame's height: the simulcast layer the SFU forwarded first (a larger key frame arrives later). */
  frameHeight: number;
  /** Each signaling request on the way to the frame, as the page and the server saw it (ms from the start). */
  steps: Map<StepName, Step>;
  /** The longest event-loop stall of the server's process, from the click to the frame. */
  loopDelayMaxMs: number;
}

/** What the page reports: times from its navigation start, and its sockets' frames on the wall clock. */
type PageSample = Pick<Sample, 'firstScript' | 'wsCreated' | 'wsOpen' | 'track' | 'frame' | 'frameHeight'> & {
  frames: Frame[];
};

/** Runs in every measured page before its own scripts. */
export function instrument(): void {
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
          void reader.read().then(({ value }: { value?: { codedHeight: number; close(): void } }) => {
            const frame = performance.now();
            const frameHeight = value?.codedHeight ?? 0;
            value?.close();
            copy.stop();
            resolve({
              firstScript,
              wsCreated: bench.wsCreated ?? Number.NaN,
              wsOpen: bench.wsOpen ?? Number.NaN,
              track: created,
              frame,
              frameHeight,
              frames: bench.frames,
            });
          }, reject);
        });
      }
    };
  });
}

/** A page to measure: its server, and the URL that joins it (with or without the pre-join screen, for bare). */
export interface Target {
  server: Pick<ServerProcess, 'connections' | 'loopDelayMaxMs'>;
  url: (prejoin: boolean) => Promise<string>;
}

/** `round` and `hasPrejoin` over the given targets, in pages of `browser`. */
export function joinPageMeasurer<T extends string>(browser: Browser, targets: Record<T, Target>) {
  const servers = Object.fromEntries(Object.entries<Target>(targets).map(([k, t]) => [k, t.server])) as Record<
    T,
    Target['server']
  >;
  /** Loads the page, clicks "Join" if it has a pre-join screen, and waits for the first remote frame. */
  async function measure(page: Page, target: T, prejoin: boolean, kind: 'cold' | 'warm'): Promise<Sample> {
    // The server's longest event-loop stall is read from the click (or navigation) to the frame: reset it now.
    if (!prejoin) await servers[target].loopDelayMaxMs();
    await page.goto(await targets[target].url(prejoin), { waitUntil: 'commit' });
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
  async function round(target: T, prejoin: boolean): Promise<{ cold: Sample; warm: Sample }> {
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
  async function hasPrejoin(target: T): Promise<boolean> {
    const context = await instrumentedContext();
    const page = await context.newPage();
    await page.goto(await targets[target].url(false));
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
  return { round, hasPrejoin };
}

/** Each step as page sent / server received / server answered / page had the answer, in ms from the start. */
const fmtStep = (st: Step | undefined) =>
  [st?.sent, st?.received, st?.answered, st?.done].map((t) => (t === undefined ? '-' : Math.round(t))).join('/');
export const fmtSteps = (s: Sample) =>
  `${STEP_NAMES.map((n) => `${n} ${fmtStep(s.steps.get(n))}`).join(', ')}; server loop stall max ${Math.round(s.loopDelayMaxMs)} ms`;

/** Median ms from the start to a moment of the samples. */
export const medianMs = (samples: Sample[], what: 'frame' | 'wsOpen' | 'html' | 'track') =>
  Math.round(median(samples.map((s) => s[what] - s.start)));

/** The median of each step's four times (page sent / server received / server answered / page had the answer). */
export function stepMedians(samples: Sample[]): Record<StepName, string> {
  return Object.fromEntries(
    STEP_NAMES.map((n) => {
      const of = (k: keyof Step) => {
        const xs = samples.map((s) => s.steps.get(n)?.[k]).filter((x): x is number => x !== undefined);
        return xs.length ? Math.round(median(xs)) : undefined;
      };
      return [n, `${of('sent') ?? '-'}/${of('received') ?? '-'}/${of('answered') ?? '-'}/${of('done') ?? '-'}`];
    }),
  ) as Record<StepName, string>;
}

/** One line of a round's result, for the log. */
export const fmtSample = (s: Sample) =>
  `frame ${Math.round(s.frame - s.start)} ms ${s.frameHeight}p (html ${Math.round(s.html)}, script ${Math.round(s.firstScript)}, ws ${Math.round(s.wsCreated - s.start)}–${Math.round(s.wsOpen - s.start)}, track ${Math.round(s.track - s.start)})`;

/** A Vigie page in `context` that joins with `token` and publishes its camera and mic: the remote party. */
export async function vigieRemote(context: BrowserContext, url: string): Promise<Page> {
  const page = await context.newPage();
  await joinThroughPage(page, url);
  return page;
}

/** Whether a Vigie page has published. */
export const vigiePublished = (page: Page) =>
  page.evaluate(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'published'));

/** Waits for all remote parties to publish. */
export async function waitPublished(probes: Array<() => Promise<boolean>>): Promise<void> {
  await waitFor(
    'the remote parties to publish',
    () => Promise.all(probes.map((p) => p())),
    (v) => v.every(Boolean),
    60_000,
  );
}
