/**
 * Regenerates docs/screenshots/*.png: the pre-join screen, the join page in a
 * call and the embed page in a call, in English and French. A real gateway
 * (real mediasoup workers) and Debian's Chromium with its fake camera, so the
 * pictures are what a participant sees. Run: `npm run screenshots` (after
 * `bash scripts/setup.sh test`, which builds the browser SDK).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { launchBrowser, receivedMedia, waitFor } from '../test/helpers/browser.js';
import { startGateway } from '../test/helpers/gateway.js';
import { LANGUAGES } from '../src/web/i18n.js';

const OUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/screenshots');
const VIEWPORT = { width: 1280, height: 720 };
/** A participant per language, named on the pre-join screen, and one who joins from the business app's embed. */
const PEOPLE = {
  en: { typed: 'Alex Morgan', embedded: 'Sam Taylor' },
  fr: { typed: 'Camille Martin', embedded: 'Léa Dubois' },
} as const;

const gw = await startGateway({ telemetry: { enabled: false } });
const browser = await launchBrowser(['--use-fake-device-for-media-stream=fps=30']);
mkdirSync(OUT, { recursive: true });

const shot = async (page: Page, name: string) => {
  await page.screenshot({ path: path.join(OUT, `${name}.png`) });
  console.log(`docs/screenshots/${name}.png`);
};
const events = (page: Page) =>
  page.evaluate(() => ((window as { vigieEvents?: Array<{ type: string }> }).vigieEvents ?? []).map((e) => e.type));

try {
  for (const lang of LANGUAGES) {
    const room = `screenshots-${lang}`;
    const join = await browser.context.newPage();
    await join.setViewportSize(VIEWPORT);
    // No name in this token: the pre-join screen asks for one.
    const unnamed = (
      await gw.app.tokens.mint({
        tenant: 'acme',
        room,
        identity: `${lang}-typed`,
        grants: ['publish', 'subscribe'],
        ttlSeconds: 600,
      })
    ).token;
    await join.goto(`${gw.url}/join?lang=${lang}&token=${unnamed}`);
    await waitFor(
      'the pre-join screen',
      () => events(join),
      (e) => e.includes('prejoin'),
    );
    await waitFor(
      'the preview',
      () => join.locator('#preview').evaluate((v: HTMLVideoElement) => v.currentTime),
      (t) => t > 0.5,
    );
    await join.fill('#name-input', PEOPLE[lang].typed);
    await shot(join, `prejoin-${lang}`);
    await join.click('#join-button');

    const embed = await browser.context.newPage();
    await embed.setViewportSize(VIEWPORT);
    await embed.goto(
      `${gw.url}/embed?lang=${lang}&token=${await gw.mint({ room, identity: `${lang}-embedded`, name: PEOPLE[lang].embedded })}`,
    );
    for (const page of [join, embed])
      await waitFor(
        'media',
        () => receivedMedia(page),
        (m) => m.framesDecoded > 30,
      );
    // Let the active-speaker badge and the videos settle.
    await new Promise((r) => setTimeout(r, 1500));
    await shot(join, `join-${lang}`);
    await shot(embed, `embed-${lang}`);
    await join.close();
    await embed.close();
  }
} finally {
  await browser.close();
  await gw.close();
}
