import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  createJoinLink,
  createVigieClient,
  readWebhook,
  VigieApiError,
  verifyWebhookSignature,
  type VigieClient,
} from '@vigie/server-sdk';
import { schemaSource, SCHEMA_FILE } from '../scripts/sdk-schema.js';
import { waitFor } from './helpers/browser.js';
import { ACME_KEY, ROOMS_WRITE_KEY, TENANT_ADMIN_KEY, startGateway, type TestGateway } from './helpers/gateway.js';
import { startWebhookReceiver } from './helpers/webhookReceiver.js';

let gw: TestGateway;
let receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
let secret: string | undefined;
const client = (key: { key: string }): VigieClient => createVigieClient({ baseUrl: gw.url, apiKey: key.key });

beforeAll(async () => {
  receiver = await startWebhookReceiver(() => secret);
  // The receiver is a local http server: plain http to loopback is allowed for it.
  gw = await startGateway({ webhooks: { allowPrivateTargets: true, allowHttp: true, backoffBaseMs: 50 } });
});
afterAll(async () => {
  await gw?.close();
  await receiver?.close();
});

test("the generated schema.d.ts is the one the gateway's OpenAPI document gives (npm run sdk:schema when not)", async () => {
  const document = (await gw.app.inject({ url: '/docs/openapi.json' })).json();
  assert.equal(
    readFileSync(SCHEMA_FILE, 'utf8'),
    await schemaSource(document),
    'packages/server-sdk/src/schema.d.ts is stale: run npm run sdk:schema',
  );
});

describe('createJoinLink (POST /v1/tokens)', () => {
  test('mints a token for one participant, with the join and embed pages that take it', async () => {
    const link = await createJoinLink(client(ACME_KEY), {
      room: 'sdk-room',
      identity: 'ada',
      name: 'Ada',
      ttlSeconds: 120,
    });
    const claims = await gw.app.tokens.verify(link.token);
    assert.deepEqual([claims.tenant, claims.room, claims.identity], ['acme', 'sdk-room', 'ada']);
    assert.equal(link.joinUrl, `${gw.url}/join?token=${encodeURIComponent(link.token)}`);
    assert.equal(link.embedUrl, `${gw.url}/embed?token=${encodeURIComponent(link.token)}`);
    assert.ok(Math.abs(Date.parse(link.expiresAt) - Date.now() - 120_000) < 60_000, link.expiresAt);
    const page = await fetch(link.joinUrl);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
  });

  test('a refusal is a VigieApiError with the status and the stable code', async () => {
    const cases: Array<[string, VigieClient, Parameters<typeof createJoinLink>[1], number, string]> = [
      [
        'unknown key',
        createVigieClient({ baseUrl: gw.url, apiKey: `vk_nope0000_${'x'.repeat(40)}` }),
        { room: 'r', identity: 'i' },
        401,
        'UNAUTHORIZED',
      ],
      ['no key', createVigieClient({ baseUrl: gw.url }), { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
      ['a key without tokens:mint', client(ROOMS_WRITE_KEY), { room: 'r', identity: 'i' }, 403, 'FORBIDDEN'],
      [
        'a grant the key may not give',
        client(ACME_KEY),
        { room: 'r', identity: 'i', grants: ['admin'] },
        403,
        'FORBIDDEN',
      ],
      ['a bad room name', client(ACME_KEY), { room: 'bad room!', identity: 'i' }, 400, 'INVALID_REQUEST'],
    ];
    for (const [name, c, body, status, code] of cases) {
      const err = await createJoinLink(c, body).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof VigieApiError, `${name}: ${String(err)}`);
      assert.deepEqual([err.status, err.code], [status, code], `${name}: ${err.message}`);
    }
  });
});

describe('verifyWebhookSignature, on deliveries the gateway really signed', () => {
  beforeAll(async () => {
    const { data, error } = await client(TENANT_ADMIN_KEY).POST('/v1/webhooks', {
      body: { url: receiver.url, events: ['room.started', 'participant.joined'] },
    });
    assert.ok(data, JSON.stringify(error));
    secret = data.secret;
    const c = await gw.connect();
    await c.request('join', { token: await gw.mint({ room: 'hooked', identity: 'grace' }) });
    await waitFor(
      'two signed deliveries',
      async () => receiver.delivered().length,
      (n) => n >= 2,
      30_000,
    );
  });

  test('accepts each delivery as received, and readWebhook gives its event', () => {
    for (const d of receiver.delivered()) {
      assert.equal(d.signatureValid, true, d.signature);
      assert.equal(verifyWebhookSignature(secret!, d.signature, Buffer.from(d.raw)), true, 'a Buffer body too');
      const event = readWebhook(secret!, d.signature, d.raw);
      assert.equal(event.id, d.id);
      assert.equal(event.event, d.event);
      assert.equal(event.tenant, 'acme');
    }
    assert.deepEqual(
      receiver
        .delivered()
        .map((d) => d.event)
        .sort(),
      ['participant.joined', 'room.started'],
    );
  });

  test('refuses another secret, an altered body or signature, a replay outside the window, and a malformed header', () => {
    const d = receiver.delivered()[0]!;
    const t = Number(/t=(\d+)/.exec(d.signature)![1]);
    const v1 = /v1=([0-9a-f]+)/.exec(d.signature)![1]!;
    const flipped = v1.slice(0, -1) + (v1.endsWith('0') ? '1' : '0');
    assert.equal(verifyWebhookSignature(`${secret}x`, d.signature, d.raw), false, 'another secret');
    assert.equal(verifyWebhookSignature(secret!, d.signature, d.raw.replace('acme', 'acmf')), false, 'an altered body');
    assert.equal(
      verifyWebhookSignature(secret!, d.signature, JSON.stringify(JSON.parse(d.raw), null, 1)),
      false,
      'the body re-serialized, not as received',
    );
    assert.equal(verifyWebhookSignature(secret!, `t=${t},v1=${flipped}`, d.raw), false, 'an altered signature');
    assert.equal(verifyWebhookSignature(secret!, `t=${t + 1},v1=${v1}`, d.raw), false, 'another timestamp');
    // The replay window (default 300 s) on both sides, and a chosen one.
    assert.equal(verifyWebhookSignature(secret!, d.signature, d.raw, { now: (t + 299) * 1000 }), true);
    assert.equal(
      verifyWebhookSignature(secret!, d.signature, d.raw, { now: (t + 301) * 1000 }),
      false,
      'replayed later',
    );
    assert.equal(
      verifyWebhookSignature(secret!, d.signature, d.raw, { now: (t - 301) * 1000 }),
      false,
      'from the future',
    );
    assert.equal(
      verifyWebhookSignature(secret!, d.signature, d.raw, { now: (t + 1000) * 1000, toleranceSeconds: 3600 }),
      true,
    );
    for (const header of [
      undefined,
      null,
      '',
      'garbage',
      `v1=${v1}`,
      `t=${t}`,
      `t=${t},v1=`,
      `t=${t},v1=${v1.slice(2)}`,
      `t=abc,v1=${v1}`,
      `t=${t}.5,v1=${v1}`,
    ]) {
      assert.equal(verifyWebhookSignature(secret!, header, d.raw), false, String(header));
    }
    assert.throws(() => readWebhook(secret!, `t=${t},v1=${flipped}`, d.raw), /invalid Vigie-Signature/);
  });
});
