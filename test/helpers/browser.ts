import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page, type Response } from 'playwright-core';
import puppeteer, { type Browser } from 'puppeteer-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const FIREFOX = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';

/** Headless Debian Chromium with a fake camera and mic that need no permission prompt, and media that plays without a gesture. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * Debian's Chromium with fake camera and mic; a fresh profile each time.
 * `mediaPermission: false` leaves out the flag that grants camera and mic, so the page is refused them, as when a user says no.
 */
export async function launchBrowser(
  extraArgs: string[] = [],
  o: { mediaPermission?: boolean } = {},
): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    // The pages speak the browser's language (Accept-Language): tests that read their words get English whatever the machine's locale.
    locale: 'en-US',
    args: [
      ...(o.mediaPermission === false
        ? [...CHROMIUM_ARGS.filter((a) => a !== '--use-fake-ui-for-media-stream'), '--deny-permission-prompts']
        : CHROMIUM_ARGS),
      ...extraArgs,
    ],
  });
  return { context, close: closeAndRemove(dir, () => context.close()) };
}

/** Closes a browser, then removes its profile. */
function closeAndRemove(dir: string, close: () => Promise<void>): () => Promise<void> {
  return async () => {
    await close();
    rmSync(dir, { recursive: true, force: true });
  };
}

/**
 * Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi, with a fake
 * camera and microphone; a fresh profile each time, removed on close. Firefox
 * gathers no loopback ICE candidate: its media must go to a routable address
 * (test/helpers/netns.ts).
 */
export async function launchFirefox(
  extraPrefs: Record<string, unknown> = {},
): Promise<{ browser: Browser; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-firefox-'));
  try {
    const browser = await puppeteer.launch({
      browser: 'firefox',
      protocol: 'webDriverBiDi',
      executablePath: FIREFOX,
      headless: true,
      userDataDir: dir,
      extraPrefsFirefox: {
        'media.navigator.streams.fake': true,
        'media.navigator.permission.disabled': true,
        // Received audio plays (and counts samples) without a user gesture, as in Chromium with its autoplay flag.
        'media.autoplay.default': 0,
        'media.autoplay.blocking_policy': 0,
        ...extraPrefs,
      },
    });
    return { browser, close: closeAndRemove(dir, () => browser.close()) };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A page or frame of either driver (playwright or puppeteer): both evaluate a function in the document. */
export interface Evaluates {
  evaluate<R>(fn: () => R | Promise<R>): Promise<R>;
}

export interface ReceivedMedia {
  framesDecoded: number;
  totalSamplesReceived: number;
  videoTracks: number;
  audioTracks: number;
}

/** Sums what a join page has received so far, from its consumers' getStats(). */
export async function receivedMedia(page: Evaluates): Promise<ReceivedMedia> {
  return page.evaluate(async () => {
    const call = (window as any).vigieCall;
    const out = { framesDecoded: 0, totalSamplesReceived: 0, videoTracks: 0, audioTracks: 0 };
    if (!call) return out;
    const { inbound } = await call.getStats();
    for (const reports of Object.values(inbound) as any[][]) {
      for (const r of reports) {
        if (r.type !== 'inbound-rtp') continue;
        if (r.kind === 'video') {
          out.videoTracks++;
          out.framesDecoded += r.framesDecoded ?? 0;
        } else if (r.kind === 'audio') {
          out.audioTracks++;
          out.totalSamplesReceived += r.totalSamplesReceived ?? 0;
        }
      }
    }
    return out;
  });
}

/** Polls until `check` passes or `ms` runs out; returns the last value. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  check: (v: T) => boolean,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T = await probe();
  while (!check(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
    last = await probe();
  }
  return last;
}

/**
 * Opens a /join or /embed link as a participant would: on /join, waits for
 * the pre-join screen to have opened the devices, types `name` when the page
 * asks for one, and clicks "Join". The one way tests enter a call through the page.
 */
export async function joinThroughPage(page: Page, url: string, o: { name?: string } = {}): Promise<Response | null> {
  const res = await page.goto(url);
  // The page itself says whether it has a pre-join screen (a link may redirect to /join, as the demo link does).
  if (!res?.ok() || (await page.locator('#prejoin').count()) === 0) return res;
  await page.waitForFunction(() => (window as any).vigieEvents?.some((e: { type: string }) => e.type === 'prejoin'));
  if (await page.locator('#name-input').count()) await page.fill('#name-input', o.name ?? 'Guest');
  await page.click('#join-button');
  return res;
}
