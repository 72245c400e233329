import assert from 'node:assert/strict';
import { decodeJwt, decodeProtectedHeader, SignJWT, UnsecuredJWT } from 'jose';
import { describe, test } from 'vitest';
import type { Grant } from '../../src/auth/grants.js';
import { TokenService, type TokenServiceOptions } from '../../src/auth/TokenService.js';

// Minting and verifying join tokens, with nothing else running. auth.test.ts covers identity-provider keys
// (a real JWKS endpoint) and the API that mints through this service.

const GLOBAL = 'global-secret-0123456789-abcdefghijklmn';
const ACME = 'acme-own-secret-0123456789-abcdefghijkl';

function service(overrides: Partial<TokenServiceOptions> = {}) {
  const tenants: Record<string, { auth?: { hs256Secret?: string } }> = {
    shop: {},
    acme: { auth: { hs256Secret: ACME } },
  };
  return new TokenService({
    issuer: 'vigie',
    audience: 'vigie-rooms',
    hs256Secret: GLOBAL,
    clockSkewSeconds: 5,
    maxIdpTokenAgeSeconds: 3600,
    tenant: (id) => tenants[id],
    ...overrides,
  });
}

const join = { tenant: 'shop', room: 'standup', identity: 'alice', grants: ['publish', 'subscribe'] as Grant[] };

/** The error code a verification fails with, and its message, or 'OK'. */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return `${(err as { code: string }).code}: ${(err as Error).message}`;
  }
}

const now = () => Math.floor(Date.now() / 1000);

/** A token signed by someone else, with the claims a minted one has. */
const forged = (secret: string, claims: Record<string, unknown> = {}, exp = now() + 600) =>
  new SignJWT({ tenant: 'shop', room: 'standup', grants: ['publish'], ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer('vigie')
    .setAudience('vigie-rooms')
    .setSubject('mallory')
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));

describe('TokenService', () => {
  test('a minted token verifies to the claims it was minted with', async () => {
    const tokens = service();
    const before = now();
    const { token, expiresAt } = await tokens.mint({
      ...join,
      grants: ['publish', 'subscribe', 'publish'],
      ttlSeconds: 600,
      name: 'Alice',
      metadata: { desk: 4 },
    });
    assert.ok(expiresAt >= before + 600 && expiresAt <= now() + 600);
    assert.deepEqual(decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' });
    const payload = decodeJwt(token);
    assert.deepEqual(payload.grants, ['publish', 'subscribe'], 'each grant once');
    assert.equal(payload.iss, 'vigie');
    assert.equal(payload.aud, 'vigie-rooms');

    const claims = await tokens.verify(token, { tenant: 'shop', room: 'standup' });
    assert.deepEqual(
      { ...claims, grants: [...claims.grants] },
      {
        identity: 'alice',
        tenant: 'shop',
        room: 'standup',
        grants: ['publish', 'subscribe'],
        name: 'Alice',
        metadata: { desk: 4 },
        expiresAt,
        issuedAt: payload.iat,
      },
    );
  });

  test('expiry: an expired token is refused; the clock skew allowance is honoured, and no more', async () => {
    const tokens = service();
    const expired = (await tokens.mint({ ...join, ttlSeconds: -60 })).token;
    assert.equal(await refusal(tokens.verify(expired)), 'UNAUTHORIZED: access token expired');
    const withinSkew = (await tokens.mint({ ...join, ttlSeconds: -2 })).token;
    assert.equal(await refusal(tokens.verify(withinSkew)), 'OK');
  });

  test('a wrong key, a tampered token, or another issuer or audience is refused', async () => {
    const tokens = service();
    assert.equal(
      await refusal(tokens.verify(await forged('not-the-secret-0123456789-abcdefghijklmn'))),
      'UNAUTHORIZED: access token signature is invalid',
    );
    assert.equal(await refusal(tokens.verify(await forged(GLOBAL))), 'OK', 'the same claims under the right key pass');

    const { token } = await tokens.mint({ ...join, ttlSeconds: 600 });
    const [h, p, s] = token.split('.');
    const raised = Buffer.from(JSON.stringify({ ...decodeJwt(token), grants: ['admin'] })).toString('base64url');
    assert.equal(
      await refusal(tokens.verify(`${h}.${raised}.${s}`)),
      'UNAUTHORIZED: access token signature is invalid',
    );
    assert.equal(await refusal(tokens.verify(`${h}.${p}.`)), 'UNAUTHORIZED: access token signature is invalid');

    assert.match(
      await refusal(service({ issuer: 'other' }).verify(token)),
      /^UNAUTHORIZED: access token claim "iss" is invalid/,
    );
    assert.match(
      await refusal(service({ audience: 'other' }).verify(token)),
      /^UNAUTHORIZED: access token claim "aud" is invalid/,
    );
    const unsigned = new UnsecuredJWT({ tenant: 'shop', room: 'standup', grants: ['admin'] })
      .setSubject('x')
      .setExpirationTime('1h')
      .encode();
    assert.equal(
      await refusal(tokens.verify(unsigned)),
      'UNAUTHORIZED: token algorithm "none" is not accepted for this tenant',
    );
  });

  test('trust is per tenant: a tenant with its own secret is minted and verified with it, and the global secret cannot sign for it', async () => {
    const tokens = service();
    const own = (await tokens.mint({ ...join, tenant: 'acme', ttlSeconds: 600 })).token;
    assert.equal(await refusal(tokens.verify(own)), 'OK');
    assert.equal(
      await refusal(tokens.verify(await forged(GLOBAL, { tenant: 'acme' }))),
      'UNAUTHORIZED: access token signature is invalid',
    );
    assert.equal(
      await refusal(tokens.verify(await forged(ACME, { tenant: 'shop' }))),
      'UNAUTHORIZED: access token signature is invalid',
    );
    assert.equal(
      await refusal(tokens.mint({ ...join, tenant: 'nobody', ttlSeconds: 60 })),
      'NOT_FOUND: no such tenant',
    );
    assert.equal(
      await refusal(tokens.verify(await forged(GLOBAL, { tenant: 'nobody' }))),
      'FORBIDDEN: token names an unknown tenant',
    );
    const idpOnly = service({ tenant: () => ({ auth: { jwksUrl: 'http://127.0.0.1:9/jwks.json' } }) });
    assert.match(
      await refusal(idpOnly.mint({ ...join, ttlSeconds: 60 })),
      /^FORBIDDEN: this tenant accepts tokens from its identity provider only/,
    );
  });

  test('a valid token opens only the tenant and room it names, and bad input is refused with UNAUTHORIZED, never a crash', async () => {
    const tokens = service();
    const { token } = await tokens.mint({ ...join, ttlSeconds: 600 });
    assert.equal(await refusal(tokens.verify(token, { room: 'other' })), 'FORBIDDEN: token is for another room');
    assert.equal(await refusal(tokens.verify(token, { tenant: 'acme' })), 'FORBIDDEN: token is for another tenant');
    const bad: Array<[unknown, string]> = [
      [undefined, 'missing access token'],
      [42, 'missing access token'],
      ['', 'missing access token'],
      ['a.b.c', 'malformed access token'],
      [`${token}${'x'.repeat(9000)}`, 'access token too large'],
    ];
    for (const [input, message] of bad) assert.equal(await refusal(tokens.verify(input)), `UNAUTHORIZED: ${message}`);
    assert.match(
      await refusal(tokens.verify(await forged(GLOBAL, { room: '../etc' }))),
      /^UNAUTHORIZED: invalid token claims: room/,
    );
    assert.match(
      await refusal(tokens.verify(await forged(GLOBAL, { grants: ['root'] }))),
      /^UNAUTHORIZED: invalid token claims: grants/,
    );
  });
});
