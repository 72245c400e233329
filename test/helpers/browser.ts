import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

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

/** Debian's Chromium with fake camera and mic; a fresh profile each time. */
export async function launchBrowser(extraArgs: string[] = []): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface ReceivedMedia {
  framesDecoded: number;
  totalSamplesReceived: number;
  videoTracks: number;
  audioTracks: number;
}

/** Sums what a join page has received so far, from its consumers' getStats(). */
export async function receivedMedia(page: Page): Promise<ReceivedMedia> {
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
export async function waitFor<T>(what: string, probe: () => Promise<T>, check: (v: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T = await probe();
  while (!check(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
    last = await probe();
  }
  return last;
}
