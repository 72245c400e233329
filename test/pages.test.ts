import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { CATALOGUES, fromAcceptLanguage, type Catalogue } from '../src/web/i18n.js';
import { ROOMS_WRITE_KEY, TENANT_ADMIN_KEY, expectCode, startGateway, type TestGateway } from './helpers/gateway.js';
import { joinThroughPage, launchBrowser, receivedMedia, waitFor } from './helpers/browser.js';

const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

let gw: TestGateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;

beforeAll(async () => {
  gw = await startGateway();
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await gw?.close();
});

/** A token without a display name (the gateway helper's `mint` always names the participant). */
const unnamedToken = async (room: string, identity: string) =>
  (await gw.app.tokens.mint({ tenant: 'acme', room, identity, grants: ['publish', 'subscribe'], ttlSeconds: 600 }))
    .token;

async function newPage(label: string, context = browser.context): Promise<Page> {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error(`[${label}] page error:`, e.message));
  return page;
}

const events = (page: Page) =>
  page.evaluate(() => ((window as any).vigieEvents ?? []) as Array<{ type: string; data: any }>);
const waitEvent = (page: Page, type: string) =>
  waitFor(
    `${type} event`,
    async () => (await events(page)).map((e) => e.type),
    (t) => t.includes(type),
  );
/** Opens /join and waits for the pre-join screen to have opened the devices. */
async function openPrejoin(page: Page, url: string): Promise<void> {
  assert.equal((await page.goto(url))?.status(), 200);
  await waitEvent(page, 'prejoin');
}

async function seriousViolations(page: Page): Promise<Array<{ id: string; impact: string; nodes: string[] }>> {
  // Evaluated through the DevTools protocol, which the page's CSP (script-src 'self') does not apply to.
  await page.evaluate(AXE);
  return page.evaluate(async () => {
    const r = await (window as any).axe.run(document);
    return r.violations
      .filter((v: { impact: string }) => v.impact === 'serious' || v.impact === 'critical')
      .map((v: { id: string; impact: string; nodes: Array<{ target: string[] }> }) => ({
        id: v.id,
        impact: v.impact,
        nodes: v.nodes.map((n) => n.target.join(' ')),
      }));
  });
}

describe('languages', () => {
  test('the English and French catalogues have the same keys, none empty', () => {
    const keys = (c: object, prefix = ''): string[] =>
      Object.entries(c).flatMap(([k, v]) => (typeof v === 'object' ? keys(v, `${prefix}${k}.`) : [`${prefix}${k}`]));
    assert.deepEqual(keys(CATALOGUES.fr).sort(), keys(CATALOGUES.en).sort());
    for (const lang of ['en', 'fr'] as const) {
      for (const k of keys(CATALOGUES[lang])) {
        const value = k.split('.').reduce<any>((o, p) => o[p], CATALOGUES[lang]);
        assert.ok(typeof value === 'string' && value.trim().length > 0, `${lang}.${k} is empty`);
      }
    }
    // A French word in place of an English one, or the reverse, would be a copy, not a translation.
    const same = (Object.keys(CATALOGUES.en) as Array<keyof Catalogue>).filter(
      (k) => k !== 'errors' && CATALOGUES.en[k] === CATALOGUES.fr[k],
    );
    assert.deepEqual(same, []);
  });

  test('Accept-Language: by quality, then order; regional variants count; unknown languages are skipped', () => {
    assert.equal(fromAcceptLanguage('fr-FR,fr;q=0.9,en;q=0.8'), 'fr');
    assert.equal(fromAcceptLanguage('de-DE, en;q=0.5, fr;q=0.7'), 'fr');
    assert.equal(fromAcceptLanguage('de, es'), undefined);
    assert.equal(fromAcceptLanguage('fr;q=0, en'), 'en');
    assert.equal(fromAcceptLanguage(undefined), undefined);
  });

  test('the page language: ?lang=, else Accept-Language, else the tenant default, else English; <html lang> says which', async () => {
    const token = await gw.mint({ room: 'lang', identity: 'lang-user' });
    const get = async (query: string, acceptLanguage?: string) => {
      const res = await gw.app.inject({
        method: 'GET',
        url: `/join?token=${token}${query}`,
        headers: acceptLanguage ? { 'accept-language': acceptLanguage } : {},
      });
      assert.equal(res.statusCode, 200);
      return res.body;
    };
    const lang = (html: string) => /<html lang="(\w+)">/.exec(html)?.[1];
    try {
      assert.equal(lang(await get('')), 'en', 'nothing says otherwise: English');
      const fr = await get('', 'fr-FR,fr;q=0.9,en;q=0.8');
      assert.equal(lang(fr), 'fr', 'Accept-Language');
      assert.match(fr, /Rejoindre/);
      assert.doesNotMatch(fr, />Join</);
      assert.equal(lang(await get('&lang=en', 'fr-FR')), 'en', '?lang= wins over Accept-Language');
      assert.equal(lang(await get('&lang=fr')), 'fr', '?lang=');
      assert.equal(lang(await get('&lang=de', 'fr')), 'fr', 'an unknown ?lang= is ignored');

      await gw.app.tenants.upsert('acme', { defaultLanguage: 'fr' });
      assert.equal(lang(await get('')), 'fr', "the tenant's default");
      assert.equal(lang(await get('', 'en-GB')), 'en', 'Accept-Language wins over the tenant default');
      assert.equal(
        lang(await get('', 'de')),
        'fr',
        'an Accept-Language the pages do not speak falls to the tenant default',
      );
      assert.equal(lang(await get('&lang=en')), 'en', '?lang= wins over the tenant default');
      await assert.rejects(
        gw.app.tenants.upsert('acme', { defaultLanguage: 'de' }),
        (e: { code?: string }) => e.code === 'INVALID_REQUEST',
      );
    } finally {
      await gw.app.tenants.upsert('acme', { defaultLanguage: undefined });
    }
  });

  test('the error page is translated too, by error code', async () => {
    const fr = await gw.app.inject({
      method: 'GET',
      url: '/join?token=not-a-token',
      headers: { 'accept-language': 'fr' },
    });
    assert.equal(fr.statusCode, 401);
    assert.match(fr.body, /<html lang="fr">/);
    assert.match(fr.body, /Impossible de rejoindre/);
    assert.match(fr.body, new RegExp(CATALOGUES.fr.errors.UNAUTHORIZED.replace(/[.?]/g, '\\$&')));
    const en = await gw.app.inject({ method: 'GET', url: '/embed?lang=en' });
    assert.equal(en.statusCode, 401);
    assert.match(en.body, /<html lang="en">/);
    assert.match(en.body, /Cannot join/);
    const home = await gw.app.inject({ method: 'GET', url: '/?lang=fr' });
    assert.match(home.body, /Passerelle Vigie/);
  });
});

describe('pre-join screen', () => {
  test('"Join" is disabled in the HTML until the page script handles it (a click before would submit the form natively and reload the page without its token)', async () => {
    const html = await (
      await fetch(`${gw.url}/join?token=${await gw.mint({ room: 'prejoin-html', identity: 'early' })}`)
    ).text();
    assert.match(html, /<button id="join-button" type="submit" disabled>/);
    const page = await newPage('enabled');
    await openPrejoin(page, `${gw.url}/join?token=${await gw.mint({ room: 'prejoin-html', identity: 'early' })}`);
    assert.equal(await page.locator('#join-button').isEnabled(), true, 'enabled once the script listens');
    await page.close();
  });

  test('shows the camera preview and lists the fake camera and microphone to choose from', async () => {
    const page = await newPage('preview');
    await openPrejoin(page, `${gw.url}/join?token=${await gw.mint({ room: 'prejoin', identity: 'previewer' })}`);
    await waitFor(
      'the preview to play',
      () => page.locator('#preview').evaluate((v: HTMLVideoElement) => ({ w: v.videoWidth, t: v.currentTime })),
      (v) => v.w > 0 && v.t > 0,
    );
    const listed = async (id: string) =>
      page
        .locator(`#${id} option`)
        .evaluateAll((os: HTMLOptionElement[]) => os.map((o) => ({ value: o.value, label: o.textContent })));
    const devices = await page.evaluate(async () =>
      (await navigator.mediaDevices.enumerateDevices()).map((d) => ({
        kind: d.kind,
        value: d.deviceId,
        label: d.label,
      })),
    );
    for (const [select, kind] of [
      ['camera-select', 'videoinput'],
      ['mic-select', 'audioinput'],
    ] as const) {
      const expected = devices.filter((d) => d.kind === kind && d.value).map(({ value, label }) => ({ value, label }));
      assert.ok(expected.length > 0, `Chromium has a fake ${kind}`);
      assert.deepEqual(await listed(select), expected, `${select} lists the browser's devices by name`);
      assert.equal(await page.locator(`#${select}`).isEnabled(), true);
    }
    assert.equal(await page.locator('#name-input').count(), 0, 'the token names the participant: no name field');
    assert.equal(await page.locator('#call').isHidden(), true, 'not in the call before "Join"');
    assert.equal(gw.app.sfu.getRoom('acme', 'prejoin'), undefined, 'nobody joined yet');
    await page.click('#join-button');
    await waitEvent(page, 'published');
    const peer = [...gw.app.sfu.getRoom('acme', 'prejoin')!.peers.values()][0]!;
    assert.deepEqual([...peer.producers.values()].map((p) => p.kind).sort(), ['audio', 'video']);
    await page.close();
  });

  test("a name typed on the pre-join screen is what the other participant sees; a token's own name cannot be overridden", async () => {
    const zoe = await newPage('zoe');
    await openPrejoin(zoe, `${gw.url}/join?token=${await unnamedToken('named', 'zoe-id')}`);
    const input = zoe.locator('#name-input');
    assert.equal(await input.count(), 1, 'the token has no name: the page asks for one');
    await zoe.click('#join-button');
    assert.equal(await input.getAttribute('aria-invalid'), 'true', 'joining without a name is refused on the page');
    assert.equal(await zoe.evaluate(() => document.activeElement?.id), 'name-input');
    await input.fill('Zoé Martin');
    await zoe.click('#join-button');
    await waitEvent(zoe, 'joined');

    const bob = await newPage('bob');
    await joinThroughPage(bob, `${gw.url}/join?token=${await gw.mint({ room: 'named', identity: 'bob' })}`);
    await waitFor(
      'bob to list zoé',
      () => bob.locator('#participants li').allTextContents(),
      (n) => n.includes('Zoé Martin'),
    );
    const zoePeer = [...gw.app.sfu.getRoom('acme', 'named')!.peers.values()].find((p) => p.identity === 'zoe-id')!;
    await waitFor(
      "zoé's tile at bob's, labelled with her name",
      () =>
        bob
          .locator(`#tile-${zoePeer.id} video`)
          .getAttribute('aria-label')
          .catch(() => null),
      (l) => l === 'Zoé Martin',
    );
    await waitFor(
      'zoé to list bob',
      () => zoe.locator('#participants li').allTextContents(),
      (n) => n.includes('Zoé Martin (you)') && n.includes('bob'),
    );

    // The token's name is the one the business app vouches for: a name sent at join does not replace it.
    const client = await gw.connect();
    const joined = await client.request('join', {
      token: await gw.mint({ room: 'named', identity: 'carl', name: 'Carl' }),
      name: 'The CEO',
    });
    assert.equal((joined as { name: string }).name, 'Carl');
    client.close();
    // A name that is blank or too long is bad input: INVALID_REQUEST, and no one joins.
    for (const name of ['   ', 'x'.repeat(129)]) {
      const c = await gw.connect();
      await expectCode(c.request('join', { token: await unnamedToken('named', 'bad-name'), name }), 'INVALID_REQUEST');
      c.close();
    }
    assert.equal(
      [...gw.app.sfu.getRoom('acme', 'named')!.peers.values()].some((p) => p.identity === 'bad-name'),
      false,
    );
    await zoe.close();
    await bob.close();
  });

  test('a refused camera and microphone are explained, and the call is joined without them', async () => {
    const denied = await launchBrowser([], { mediaPermission: false });
    try {
      const page = await newPage('denied', denied.context);
      await openPrejoin(page, `${gw.url}/join?token=${await gw.mint({ room: 'refused', identity: 'shy' })}`);
      const messages = await page.locator('#device-messages p').allTextContents();
      assert.deepEqual(messages, [CATALOGUES.en.cameraRefused, CATALOGUES.en.micRefused]);
      assert.equal(await page.locator('#device-messages').getAttribute('role'), 'status', 'the message is announced');
      assert.equal(await page.locator('#camera-select').isDisabled(), true);
      await page.click('#join-button');
      await waitEvent(page, 'published');
      const peer = [...gw.app.sfu.getRoom('acme', 'refused')!.peers.values()].find((p) => p.identity === 'shy')!;
      assert.equal(peer.producers.size, 0, 'joined, publishing nothing');

      // In French, the same.
      const fr = await newPage('denied-fr', denied.context);
      await openPrejoin(fr, `${gw.url}/join?lang=fr&token=${await gw.mint({ room: 'refused', identity: 'timide' })}`);
      assert.deepEqual(await fr.locator('#device-messages p').allTextContents(), [
        CATALOGUES.fr.cameraRefused,
        CATALOGUES.fr.micRefused,
      ]);
    } finally {
      await denied.close();
    }
  });
});

describe('pre-join screen without a camera', () => {
  test('a missing camera is explained, and the participant joins with the microphone only', async () => {
    const page = await newPage('no-camera');
    // A machine without a camera: the browser answers NotFoundError for video (the fake device cannot be unplugged).
    await page.addInitScript(() => {
      const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = (c) =>
        c?.video ? Promise.reject(new DOMException('Requested device not found', 'NotFoundError')) : real(c);
    });
    await openPrejoin(page, `${gw.url}/join?token=${await gw.mint({ room: 'no-camera', identity: 'voice-only' })}`);
    assert.deepEqual(await page.locator('#device-messages p').allTextContents(), [CATALOGUES.en.cameraMissing]);
    await page.click('#join-button');
    await waitEvent(page, 'published');
    const peer = [...gw.app.sfu.getRoom('acme', 'no-camera')!.peers.values()][0]!;
    assert.deepEqual(
      [...peer.producers.values()].map((p) => p.kind),
      ['audio'],
    );
    await page.close();
  });
});

describe('accessibility', () => {
  for (const lang of ['en', 'fr'] as const) {
    test(`axe: no serious or critical violation on the pre-join, join and embed screens (${lang})`, async () => {
      const page = await newPage(`axe-${lang}`);
      await openPrejoin(
        page,
        `${gw.url}/join?lang=${lang}&token=${await unnamedToken(`axe-${lang}`, `axe-a-${lang}`)}`,
      );
      assert.deepEqual(await seriousViolations(page), [], 'pre-join');
      await page.fill('#name-input', 'Ada');
      await page.click('#join-button');
      const other = await newPage(`axe-other-${lang}`);
      await joinThroughPage(
        other,
        `${gw.url}/join?lang=${lang}&token=${await gw.mint({ room: `axe-${lang}`, identity: `axe-b-${lang}` })}`,
      );
      await waitFor(
        'media at the join page',
        () => receivedMedia(page),
        (m) => m.framesDecoded > 0,
      );
      assert.deepEqual(await seriousViolations(page), [], 'join page in a call');
      const embed = await newPage(`axe-embed-${lang}`);
      assert.equal(
        (
          await embed.goto(
            `${gw.url}/embed?lang=${lang}&token=${await gw.mint({ room: `axe-${lang}`, identity: `axe-c-${lang}` })}`,
          )
        )?.status(),
        200,
      );
      await waitFor(
        'media at the embed page',
        () => receivedMedia(embed),
        (m) => m.framesDecoded > 0,
      );
      assert.deepEqual(await seriousViolations(embed), [], 'embed page in a call');
      for (const p of [page, other, embed]) await p.close();
    });
  }

  test('keyboard: Tab reaches every control in order; Enter and Space work them', async () => {
    const page = await newPage('keys');
    await openPrejoin(page, `${gw.url}/join?token=${await unnamedToken('keys', 'keys')}`);
    const focused = () => page.evaluate(() => document.activeElement?.id ?? '');
    const tabTo = async (id: string) => {
      for (let i = 0; i < 20 && (await focused()) !== id; i++) await page.keyboard.press('Tab');
      assert.equal(await focused(), id, `Tab reaches #${id}`);
    };
    await tabTo('camera-select');
    await tabTo('mic-select');
    await tabTo('name-input');
    await page.keyboard.press('Enter');
    assert.equal(
      await page.locator('#name-input').getAttribute('aria-invalid'),
      'true',
      'Enter without a name: asked for it',
    );
    await page.keyboard.type('Kim');
    await tabTo('join-button');
    await page.keyboard.press('Space');
    await waitEvent(page, 'published');
    const pressed = () => page.locator('#toggle-mic').getAttribute('aria-pressed');
    await tabTo('toggle-mic');
    await page.keyboard.press('Space');
    await waitFor('Space mutes', pressed, (v) => v === 'true');
    await page.keyboard.press('Enter');
    await waitFor('Enter unmutes', pressed, (v) => v === 'false');
    for (const id of ['toggle-cam', 'share-screen', 'leave']) await tabTo(id);
    await page.keyboard.press('Enter');
    await waitEvent(page, 'left');
    await page.close();
  });

  test('recording: the notice is announced, and the consent request is a modal dialog that takes the focus', async () => {
    assert.equal(
      (
        await fetch(`${gw.url}/v1/rooms`, {
          method: 'POST',
          headers: { 'x-api-key': ROOMS_WRITE_KEY.key, 'content-type': 'application/json' },
          body: JSON.stringify({ room: 'consent', consentRequired: true }),
        })
      ).status,
      201,
    );
    const page = await newPage('consent');
    await joinThroughPage(
      page,
      `${gw.url}/join?lang=fr&token=${await gw.mint({ room: 'consent', identity: 'consenting' })}`,
    );
    await waitEvent(page, 'published');
    const other = await newPage('consent-other');
    await joinThroughPage(other, `${gw.url}/join?token=${await gw.mint({ room: 'consent', identity: 'other' })}`);
    await waitFor(
      'media',
      () => receivedMedia(page),
      (m) => m.framesDecoded > 0,
    );
    // What the page script writes is in the page's language too.
    assert.equal(await page.locator('#status').textContent(), 'Dans consent');
    await waitFor(
      'the list in French',
      () => page.locator('#participants li').allTextContents(),
      (n) => n.includes('consenting (vous)'),
    );
    assert.equal(await page.locator('#toggle-mic').textContent(), 'Couper le micro');
    await page.focus('#toggle-cam');
    const rec = await fetch(`${gw.url}/v1/rooms/consent/recording`, {
      method: 'POST',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'start' }),
    });
    assert.equal(rec.status, 200, await rec.text());

    await waitFor(
      'the announcement',
      () => page.locator('#announcer').textContent(),
      (t) => t === CATALOGUES.fr.recordingStarted,
    );
    assert.equal(await page.locator('#announcer').getAttribute('aria-live'), 'assertive');
    const dialog = page.locator('#consent');
    await waitFor(
      'the consent dialog',
      () => dialog.isVisible(),
      (v) => v,
    );
    assert.equal(await dialog.getAttribute('role'), 'dialog');
    assert.equal(await dialog.getAttribute('aria-modal'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'consent-yes', 'focus moved into the dialog');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'consent-no');
    await page.keyboard.press('Tab');
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      'consent-yes',
      'focus stays in the modal dialog',
    );
    assert.deepEqual(await seriousViolations(page), [], 'with the dialog open');
    await page.keyboard.press('Enter');
    await waitEvent(page, 'recordingConsent');
    assert.equal(await dialog.isHidden(), true);
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'toggle-cam', 'focus back where it was');
    const stop = await fetch(`${gw.url}/v1/rooms/consent/recording`, {
      method: 'POST',
      headers: { 'x-api-key': TENANT_ADMIN_KEY.key, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'stop' }),
    });
    assert.equal(stop.status, 200, await stop.text());
    await waitFor(
      'the end announced',
      () => page.locator('#announcer').textContent(),
      (t) => t === CATALOGUES.fr.recordingStopped,
      60_000,
    );
    await page.close();
    await other.close();
  });

  test('the active speaker is shown in words, not by colour alone', async () => {
    const a = await newPage('speaker-a');
    await joinThroughPage(a, `${gw.url}/join?token=${await gw.mint({ room: 'speaker', identity: 'speaker-a' })}`);
    // Alone in the room, a is the dominant speaker; b, joining after that, must be told (the observer says it once).
    await waitFor(
      'a to be the active speaker',
      () => a.locator('.tile.speaking').count(),
      (n) => n === 1,
      60_000,
    );
    const b = await newPage('speaker-b');
    await joinThroughPage(b, `${gw.url}/join?token=${await gw.mint({ room: 'speaker', identity: 'speaker-b' })}`);
    // Chromium's fake microphone beeps: one of the two is the active speaker.
    const badge = await waitFor(
      'a speaking tile',
      () => b.locator('.tile.speaking .speaking-badge').allInnerTexts(),
      (t) => t.length === 1,
      60_000,
    );
    assert.match(badge[0]!, /Speaking/);
    await a.close();
    await b.close();
  });
});
