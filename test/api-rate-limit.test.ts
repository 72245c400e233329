import { afterAll, beforeAll, test } from 'vitest';
import assert from 'node:assert/strict';
import { ROOMS_ONLY_KEY, ROOMS_WRITE_KEY, startGateway, type TestGateway } from './helpers/gateway.js';

const key = (k: { key: string }) => ({ 'x-api-key': k.key });

let limited: TestGateway;
beforeAll(async () => {
  limited = await startGateway({ api: { ratePerMinute: 5, authFailuresPerMinute: 10 }, media: { workers: 1 } });
});
afterAll(() => limited.close());

const get = async (headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
  limited.app.inject({ method: 'GET', url: '/v1/rooms', headers, remoteAddress });

test('rate limit per verified API key', async () => {
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) codes.push((await get(key(ROOMS_ONLY_KEY))).statusCode);
  assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429]);
  const r = await get(key(ROOMS_ONLY_KEY));
  assert.equal(r.json().error.code, 'RATE_LIMITED');
  assert.ok(Number(r.headers['retry-after']) > 0, 'says when to come back');
  assert.equal((await get(key(ROOMS_WRITE_KEY))).statusCode, 200, 'another key is not affected');
});

test("forged keys carrying a victim's key id cannot spend the victim's budget; failed authentications are limited per address", async () => {
  // The attacker knows the victim's key id (it is in every key the victim sends), not its secret.
  const victim = await limited.app.tenants.createApiKey('acme', ['rooms:read']);
  const forged = `vk_${victim.id}_${'A'.repeat(43)}`;
  const attacker = '198.51.100.7';
  const codes: number[] = [];
  for (let i = 0; i < 620; i++) codes.push((await get({ 'x-api-key': forged }, attacker)).statusCode);
  assert.deepEqual(codes.slice(0, 10), Array(10).fill(401), 'the first failures are answered 401');
  assert.ok(
    codes.slice(10).every((c) => c === 429),
    'beyond VIGIE_API_AUTH_FAILURES_PER_MIN, 429',
  );
  // The same for a bearer token that does not verify, and for no credential at all.
  assert.equal((await get({ authorization: 'Bearer not.a.jwt' }, attacker)).statusCode, 429);
  assert.equal((await get({}, attacker)).statusCode, 429);

  const victimCodes: number[] = [];
  for (let i = 0; i < 5; i++) victimCodes.push((await get({ 'x-api-key': victim.key }, '203.0.113.9')).statusCode);
  assert.deepEqual(victimCodes, [200, 200, 200, 200, 200], "the victim's whole budget is intact");
  assert.equal(
    (await get(key(ROOMS_WRITE_KEY), attacker)).statusCode,
    200,
    'a valid key from the attacking address still works: only failures are limited there',
  );
  assert.equal(
    (await get({ 'x-api-key': forged }, '192.0.2.1')).statusCode,
    401,
    'another address has its own failure budget',
  );
});
