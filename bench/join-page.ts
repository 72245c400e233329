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
import { chromium, type Browser } from 'playwright-core';
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
import { median } from './common.js';
import { startServerProcess } from './join-page/server-process.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);

// Each server in its own process (bench/join-page/server-process.ts).
const [gw, bare] = await Promise.all([startServerProcess('vigie'), startServerProcess('bare')]);
let seq = 0;
const targets = {
  bare: { server: bare, url: async (prejoin: boolean) => `${bare.url}/${prejoin ? '?prejoin=1' : ''}` },
  vigie: {
    server: gw,
    url: async () => `${gw.url}/join?token=${await gw.mint({ identity: `viewer-${++seq}`, name: 'Viewer' })}`,
  },
};
type Target = keyof typeof targets;

// The remote party: one page on each server, publishing before the first measure and until the last.
const remote = await launchBrowser();
const vigieRemotePage = await vigieRemote(
  remote.context,
  `${gw.url}/join?token=${await gw.mint({ identity: 'remote', name: 'Remote' })}`,
);
const bareRemote = await remote.context.newPage();
await bareRemote.goto(bare.url);
await waitPublished([
  () => vigiePublished(vigieRemotePage),
  () => bareRemote.evaluate(() => (window as any).bare.published),
]);
// A Vigie page with a pre-join screen would have waited for its "Join" click; it has not published then.
const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
const { round, hasPrejoin } = joinPageMeasurer(browser, targets);

const prejoin = await hasPrejoin('vigie');
console.error(`[join-page] measured from ${prejoin ? 'the click on "Join"' : 'navigation start'}`);
// A round of each, not counted: the servers' and the browser's code paths warm up.
await round('bare', prejoin);
await round('vigie', prejoin);

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
    console.error(
      `[join-page] round ${i + 1} ${target.padEnd(5)} cold ${fmtSample(r.cold)}, warm ${fmtSample(r.warm)}`,
    );
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
  const ms = (t: Target, what: 'frame' | 'wsOpen' | 'html' | 'track') => medianMs(results[t][kind], what);
  const frame = { bare: ms('bare', 'frame'), vigie: ms('vigie', 'frame') };
  return {
    bareMs: frame.bare,
    vigieMs: frame.vigie,
    ratio: Number((frame.vigie / frame.bare).toFixed(3)),
    htmlMs: { bare: ms('bare', 'html'), vigie: ms('vigie', 'html') },
    wsOpenMs: { bare: ms('bare', 'wsOpen'), vigie: ms('vigie', 'wsOpen') },
    trackMs: { bare: ms('bare', 'track'), vigie: ms('vigie', 'track') },
    // Median of each step's four times (page sent / server received / server answered / page had the answer).
    steps: { bare: stepMedians(results.bare[kind]), vigie: stepMedians(results.vigie[kind]) },
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
