import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROOMS_ONLY_KEY, ROOMS_WRITE_KEY, startGateway } from './helpers/gateway.js';

const key = (k: { key: string }) => ({ 'x-api-key': k.key });

test('rate limit per API key', async () => {
  const limited = await startGateway({ api: { ratePerMinute: 5 } });
  try {
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await limited.app.inject({ method: 'GET', url: '/v1/rooms', headers: key(ROOMS_ONLY_KEY) })).statusCode);
    assert.deepEqual(codes, [200, 200, 200, 200, 200, 429, 429]);
    const r = await limited.app.inject({ method: 'GET', url: '/v1/rooms', headers: key(ROOMS_ONLY_KEY) });
    assert.equal(r.json().error.code, 'RATE_LIMITED');
    assert.equal((await limited.app.inject({ method: 'GET', url: '/v1/rooms', headers: key(ROOMS_WRITE_KEY) })).statusCode, 200, 'another key is not affected');
  } finally {
    await limited.close();
  }
});
