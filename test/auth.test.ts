import { afterAll, beforeAll, onTestFinished, test } from 'vitest';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair, jwtVerify, SignJWT, type JWK } from 'jose';
import { ApiKeyStore, generateApiKey, TokenService, turnCredentials } from '../src/auth/index.js';
import {
  ACME_KEY,
  GLOBEX_KEY,
  REVOKED_KEY,
  ROOMS_ONLY_KEY,
  startGateway,
  type TestGateway,
} from './helpers/gateway.js';

const SECRET = 'unit-test-secret-0123456789-abcdefghij';
const base = {
  issuer: 'vigie',
  audience: 'vigie',
  hs256Secret: SECRET,
  clockSkewSeconds: 30,
  maxIdpTokenAgeSeconds: 3600,
  tenant: (t: string) => (t === 'acme' || t === 'globex' ? {} : undefined),
};
const claims = { tenant: 'acme', room: 'r1', grants: ['publish', 'subscribe'] };
const now = () => Math.floor(Date.now() / 1000);

function hs(
  payload: Record<string, unknown>,
  opts: { secret?: string; iss?: string; aud?: string; exp?: number; nbf?: number; sub?: string } = {},
) {
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(opts.iss ?? 'vigie')
    .setAudience(opts.aud ?? 'vigie')
    .setSubject(opts.sub ?? 'alice')
    .setExpirationTime(opts.exp ?? now() + 600);
  if (opts.nbf) jwt.setNotBefore(opts.nbf);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

// A real JWKS endpoint whose key set can be rotated during the test.
const jwksServer = Fastify();
let published: JWK[] = [];
const keys: Record<string, { privateKey: CryptoKey; alg: string }> = {};
let jwksUrl = '';
let jwksFetches = 0;

beforeAll(async () => {
  for (const [kid, alg] of [
    ['rsa-1', 'RS256'],
    ['ec-1', 'ES256'],
    ['ed-1', 'EdDSA'],
    ['rsa-2', 'RS256'],
  ] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    keys[kid] = { privateKey: privateKey as CryptoKey, alg };
    if (kid !== 'rsa-2') published.push({ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' });
    else (keys[kid] as any).jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  }
  // A second identity provider, globex's own, with its own key.
  const globexIdp = await generateKeyPair('ES256', { extractable: true });
  keys['globex-es'] = { privateKey: globexIdp.privateKey as CryptoKey, alg: 'ES256' };
  const globexJwk = { ...(await exportJWK(globexIdp.publicKey)), kid: 'globex-es', alg: 'ES256', use: 'sig' };
  jwksServer.get('/globex/jwks.json', async () => ({ keys: [globexJwk] }));
  jwksServer.get('/jwks.json', async () => {
    jwksFetches++;
    return { keys: published };
  });
  await jwksServer.listen({ host: '127.0.0.1', port: 0 });
  jwksUrl = `http://127.0.0.1:${(jwksServer.server.address() as { port: number }).port}/jwks.json`;
});
afterAll(() => jwksServer.close());

function signed(
  kid: string,
  payload: Record<string, unknown> = claims,
  extra: { sub?: string; iat?: number | null; typ?: string } = {},
) {
  const k = keys[kid]!;
  const jwt = new SignJWT(payload)
    .setProtectedHeader({ alg: k.alg, kid, ...(extra.typ ? { typ: extra.typ } : {}) })
    .setIssuer('vigie')
    .setAudience('vigie')
    .setSubject(extra.sub ?? 'bob')
    .setExpirationTime(now() + 600);
  if (extra.iat !== null) jwt.setIssuedAt(extra.iat ?? now());
  return jwt.sign(k.privateKey);
}

test('HS256 tokens: valid ones verify, attacks are refused with the right code', async () => {
  const svc = new TokenService(base);
  const ok = await svc.verify(await hs(claims));
  assert.equal(ok.identity, 'alice');
  assert.equal(ok.tenant, 'acme');
  assert.deepEqual([...ok.grants], ['publish', 'subscribe']);

  const header = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = header({ ...claims, sub: 'alice', iss: 'vigie', aud: 'vigie', exp: now() + 600 });
  const good = await hs(claims);
  const [h, p, s] = good.split('.');
  const tampered = `${h}.${header({ ...claims, grants: ['admin'], sub: 'alice', iss: 'vigie', aud: 'vigie', exp: now() + 600 })}.${s}`;

  const table: Array<[string, () => Promise<unknown>, string]> = [
    ['alg none', () => svc.verify(`${header({ alg: 'none', typ: 'JWT' })}.${body}.`), 'UNAUTHORIZED'],
    ['garbage', () => svc.verify('not.a.jwt'), 'UNAUTHORIZED'],
    ['missing', () => svc.verify(undefined), 'UNAUTHORIZED'],
    ['oversized', () => svc.verify('a'.repeat(9000)), 'UNAUTHORIZED'],
    [
      'wrong secret',
      async () => svc.verify(await hs(claims, { secret: 'another-secret-of-sufficient-length!!' })),
      'UNAUTHORIZED',
    ],
    ['tampered payload', () => svc.verify(tampered), 'UNAUTHORIZED'],
    ['wrong audience', async () => svc.verify(await hs(claims, { aud: 'someone-else' })), 'UNAUTHORIZED'],
    ['wrong issuer', async () => svc.verify(await hs(claims, { iss: 'evil' })), 'UNAUTHORIZED'],
    ['expired beyond skew', async () => svc.verify(await hs(claims, { exp: now() - 120 })), 'UNAUTHORIZED'],
    ['expired within skew', async () => svc.verify(await hs(claims, { exp: now() - 5 })), 'OK'],
    ['not yet valid', async () => svc.verify(await hs(claims, { nbf: now() + 600 })), 'UNAUTHORIZED'],
    ['missing grants', async () => svc.verify(await hs({ tenant: 'acme', room: 'r1' })), 'UNAUTHORIZED'],
    ['unknown grant', async () => svc.verify(await hs({ ...claims, grants: ['root'] })), 'UNAUTHORIZED'],
    ['bad room id', async () => svc.verify(await hs({ ...claims, room: '../etc' })), 'UNAUTHORIZED'],
    ['unknown tenant', async () => svc.verify(await hs({ ...claims, tenant: 'initech' })), 'FORBIDDEN'],
    ['another tenant', async () => svc.verify(await hs(claims), { tenant: 'globex' }), 'FORBIDDEN'],
    ['another room', async () => svc.verify(await hs(claims), { room: 'r2' }), 'FORBIDDEN'],
    ['RS256 without a JWKS', async () => svc.verify(await signed('rsa-1')), 'UNAUTHORIZED'],
  ];
  for (const [name, run, expected] of table) assert.equal(await code(run()), expected, name);
  void p;
});

test('JWKS: RS256, ES256 and EdDSA keys verify; unknown kids are refused; rotation is picked up', async () => {
  const svc = new TokenService({ ...base, jwksUrl, jwksCooldownMs: 0 });
  for (const kid of ['rsa-1', 'ec-1', 'ed-1']) assert.equal((await svc.verify(await signed(kid))).identity, 'bob', kid);
  const fetchesBefore = jwksFetches;
  assert.equal(await code(svc.verify(await signed('rsa-2'))), 'UNAUTHORIZED', 'kid not yet published');
  assert.ok(jwksFetches > fetchesBefore, 'an unknown kid triggers a refetch');

  // Rotation: the IdP publishes rsa-2 and retires rsa-1.
  published = [...published.filter((k) => k.kid !== 'rsa-1'), (keys['rsa-2'] as any).jwk];
  assert.equal((await svc.verify(await signed('rsa-2'))).identity, 'bob');
  // An HS256 token forged with the RSA public key as secret (algorithm confusion) is refused.
  const forged = await hs(claims, { secret: JSON.stringify((keys['rsa-2'] as any).jwk) });
  assert.equal(await code(svc.verify(forged)), 'UNAUTHORIZED');
});

test("per-tenant trust: a tenant's own secret or JWKS signs for it alone, and the global keys no longer do", async () => {
  const ACME_SECRET = 'acme-own-secret-0123456789-abcdefghijkl';
  const tenants: Record<string, { auth?: { hs256Secret?: string; jwksUrl?: string } }> = {
    acme: { auth: { hs256Secret: ACME_SECRET } },
    globex: { auth: { jwksUrl: jwksUrl.replace('/jwks.json', '/globex/jwks.json') } },
    initech: {},
  };
  const svc = new TokenService({ ...base, jwksUrl, jwksCooldownMs: 0, tenant: (t) => tenants[t] });
  const forTenant = (tenant: string) => ({ ...claims, tenant });
  const table: Array<[string, () => Promise<unknown>, string]> = [
    [
      "acme's own secret signs for acme",
      async () => svc.verify(await hs(forTenant('acme'), { secret: ACME_SECRET })),
      'OK',
    ],
    ['the global secret no longer signs for acme', async () => svc.verify(await hs(forTenant('acme'))), 'UNAUTHORIZED'],
    [
      "acme's secret cannot sign for globex",
      async () => svc.verify(await hs(forTenant('globex'), { secret: ACME_SECRET })),
      'UNAUTHORIZED',
    ],
    [
      "acme's secret cannot sign for initech (global trust)",
      async () => svc.verify(await hs(forTenant('initech'), { secret: ACME_SECRET })),
      'UNAUTHORIZED',
    ],
    ['the global secret still signs for initech', async () => svc.verify(await hs(forTenant('initech'))), 'OK'],
    ["globex's IdP signs for globex", async () => svc.verify(await signed('globex-es', forTenant('globex'))), 'OK'],
    [
      "globex's IdP cannot sign for acme",
      async () => svc.verify(await signed('globex-es', forTenant('acme'))),
      'UNAUTHORIZED',
    ],
    [
      "globex's IdP cannot sign for initech",
      async () => svc.verify(await signed('globex-es', forTenant('initech'))),
      'UNAUTHORIZED',
    ],
    [
      'the global IdP no longer signs for globex',
      async () => svc.verify(await signed('ec-1', forTenant('globex'))),
      'UNAUTHORIZED',
    ],
    [
      'the global IdP still signs for initech',
      async () => svc.verify(await signed('ec-1', forTenant('initech'))),
      'OK',
    ],
    [
      'the global secret cannot sign for globex (IdP only)',
      async () => svc.verify(await hs(forTenant('globex'))),
      'UNAUTHORIZED',
    ],
  ];
  for (const [name, run, expected] of table) assert.equal(await code(run()), expected, name);

  // Minting uses the tenant's own secret, and is refused for a tenant that trusts only its IdP.
  const minted = await svc.mint({ tenant: 'acme', room: 'r1', identity: 'ann', grants: ['publish'], ttlSeconds: 60 });
  assert.equal((await svc.verify(minted.token)).tenant, 'acme');
  await assert.rejects(jwtVerify(minted.token, new TextEncoder().encode(SECRET)), 'not signed with the global secret');
  assert.equal(
    await code(svc.mint({ tenant: 'globex', room: 'r1', identity: 'gus', grants: ['publish'], ttlSeconds: 60 })),
    'FORBIDDEN',
  );
});

test('typ must be an access token type, and identity-provider tokens must carry a recent iat', async () => {
  const svc = new TokenService({ ...base, jwksUrl, jwksCooldownMs: 0, maxIdpTokenAgeSeconds: 600 });
  const table: Array<[string, () => Promise<unknown>, string]> = [
    ['typ JWT', async () => svc.verify(await signed('ec-1', claims, { typ: 'JWT' })), 'OK'],
    ['typ at+jwt (RFC 9068)', async () => svc.verify(await signed('ec-1', claims, { typ: 'at+jwt' })), 'OK'],
    ['typ dpop+jwt', async () => svc.verify(await signed('ec-1', claims, { typ: 'dpop+jwt' })), 'UNAUTHORIZED'],
    ['typ logout+jwt', async () => svc.verify(await signed('ec-1', claims, { typ: 'logout+jwt' })), 'UNAUTHORIZED'],
    [
      'HS256 with typ secevent+jwt',
      async () =>
        svc.verify(
          await new SignJWT(claims)
            .setProtectedHeader({ alg: 'HS256', typ: 'secevent+jwt' })
            .setIssuer('vigie')
            .setAudience('vigie')
            .setSubject('a')
            .setExpirationTime(now() + 60)
            .sign(new TextEncoder().encode(SECRET)),
        ),
      'UNAUTHORIZED',
    ],
    ['IdP token without iat', async () => svc.verify(await signed('ec-1', claims, { iat: null })), 'UNAUTHORIZED'],
    [
      'IdP token issued 20 min ago (limit 10)',
      async () => svc.verify(await signed('ec-1', claims, { iat: now() - 1200 })),
      'UNAUTHORIZED',
    ],
    ['IdP token issued 5 min ago', async () => svc.verify(await signed('ec-1', claims, { iat: now() - 300 })), 'OK'],
  ];
  for (const [name, run, expected] of table) assert.equal(await code(run()), expected, name);
});

test('API keys are checked by hash; revoked and unknown keys are refused', () => {
  const k = generateApiKey('tenantk1');
  const store = new ApiKeyStore([
    {
      id: 't',
      embedOrigins: [],
      allowedLocations: ['FR'],
      retentionPolicy: 'default',
      webhooks: [],
      apiKeys: [{ id: 'tenantk1', hash: k.hash, scopes: ['tokens:mint'], revoked: false }],
    },
  ]);
  assert.equal(store.authenticate(k.key).tenant, 't');
  assert.throws(() => store.authenticate(k.key.slice(0, -1) + (k.key.endsWith('A') ? 'B' : 'A')), {
    code: 'UNAUTHORIZED',
  });
  assert.throws(() => store.authenticate(`vk_nobody00_${'x'.repeat(43)}`), { code: 'UNAUTHORIZED' });
  assert.throws(() => store.authenticate(undefined), { code: 'UNAUTHORIZED' });
  assert.ok(!JSON.stringify(store).includes(k.key));
});

test('TURN REST credentials follow coturn use-auth-secret', () => {
  const c = turnCredentials('s3cret-s3cret-s3cret', 'peer1', 3600, 1_700_000_000_000);
  assert.equal(c.username, '1700003600:peer1');
  // Known answer, from: printf '1700003600:peer1' | openssl dgst -sha1 -hmac s3cret-s3cret-s3cret -binary | base64
  assert.equal(c.credential, '3BFMKQKeOKKNnAIJyVw4rZogIXw=');
});

let gw: TestGateway;
test("POST /v1/tokens mints a join token and link for the API key's tenant", async () => {
  gw = await startGateway();
  onTestFinished(() => gw.close());
  const res = await gw.app.inject({
    method: 'POST',
    url: '/v1/tokens',
    headers: { 'x-api-key': ACME_KEY.key },
    payload: { room: 'support-42', identity: 'customer-7', name: 'Ada', ttlSeconds: 300 },
  });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json();
  assert.match(body.joinUrl, new RegExp(`^${gw.url}/join\\?token=`));
  const verified = await gw.app.tokens.verify(body.token);
  assert.equal(verified.tenant, 'acme');
  assert.equal(verified.room, 'support-42');
  assert.ok(verified.expiresAt - now() <= 300 && verified.expiresAt - now() > 290);

  const cases: Array<[string, Record<string, string>, unknown, number, string]> = [
    ['no key', {}, { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
    ['bad key', { 'x-api-key': `vk_acme01_${'x'.repeat(43)}` }, { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
    ['revoked key', { 'x-api-key': REVOKED_KEY.key }, { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
    ['wrong scope', { 'x-api-key': ROOMS_ONLY_KEY.key }, { room: 'r', identity: 'i' }, 403, 'FORBIDDEN'],
    ['bad room', { 'x-api-key': ACME_KEY.key }, { room: '../x', identity: 'i' }, 400, 'INVALID_REQUEST'],
    [
      'ttl too long',
      { 'x-api-key': ACME_KEY.key },
      { room: 'r', identity: 'i', ttlSeconds: 10 ** 7 },
      400,
      'INVALID_REQUEST',
    ],
    [
      'unknown grant',
      { 'x-api-key': ACME_KEY.key },
      { room: 'r', identity: 'i', grants: ['root'] },
      400,
      'INVALID_REQUEST',
    ],
  ];
  for (const [name, headers, payload, status, errCode] of cases) {
    const r = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers, payload: payload as object });
    assert.equal(r.statusCode, status, `${name}: ${r.body}`);
    assert.equal(r.json().error.code, errCode, name);
  }
  // A key only ever mints for its own tenant.
  const g = await gw.app.inject({
    method: 'POST',
    url: '/v1/tokens',
    headers: { authorization: `Bearer ${GLOBEX_KEY.key}` },
    payload: { room: 'support-42', identity: 'x' },
  });
  assert.equal((await gw.app.tokens.verify(g.json().token)).tenant, 'globex');
  assert.ok(!gw.logs().includes(ACME_KEY.key) && !gw.logs().includes(body.token), 'secrets never reach the log');

  // Minting cannot escalate: each grant needs its scope (the tenant admin scope holds them all).
  const moderatorKey = await gw.app.tenants.createApiKey('acme', ['tokens:mint', 'tokens:moderator']);
  const recorderKey = await gw.app.tenants.createApiKey('acme', ['tokens:mint', 'tokens:recorder']);
  const viewerMintKey = await gw.app.tenants.createApiKey('acme', ['tokens:mint', 'recordings:read']);
  const adminKey = await gw.app.tenants.createApiKey('acme', ['admin']);
  const mint = async (k: string, grants: string[]) =>
    (
      await gw.app.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: { 'x-api-key': k },
        payload: { room: 'r', identity: 'i', grants },
      })
    ).statusCode;
  const escalation: Array<[string, string, string[], number]> = [
    ['mint-only key mints admin', ACME_KEY.key, ['publish', 'admin'], 403],
    ['mint-only key mints record', ACME_KEY.key, ['record'], 403],
    ['mint-only key mints recordings:read', ACME_KEY.key, ['subscribe', 'recordings:read'], 403],
    ['mint-only key mints publish+subscribe', ACME_KEY.key, ['publish', 'subscribe'], 200],
    ['moderator key mints admin', moderatorKey.key, ['admin'], 200],
    ['moderator key mints record', moderatorKey.key, ['admin', 'record'], 403],
    ['recorder key mints record', recorderKey.key, ['publish', 'record'], 200],
    ['recorder key mints admin', recorderKey.key, ['admin'], 403],
    ['viewer key mints recordings:read', viewerMintKey.key, ['recordings:read'], 200],
    [
      'tenant admin key mints everything',
      adminKey.key,
      ['publish', 'subscribe', 'record', 'admin', 'recordings:read'],
      200,
    ],
  ];
  for (const [name, k, grants, status] of escalation) assert.equal(await mint(k, grants), status, name);

  // A tenant with its own secret: POST /v1/tokens signs with it, and the admin API never shows it.
  const OWN = 'globex-own-secret-abcdefghijklmnopqrstuvwxyz';
  await gw.app.tenants.upsert('globex', { auth: { hs256Secret: OWN } });
  const own = await gw.app.inject({
    method: 'POST',
    url: '/v1/tokens',
    headers: { authorization: `Bearer ${GLOBEX_KEY.key}` },
    payload: { room: 'support-42', identity: 'x' },
  });
  assert.equal(own.statusCode, 200, own.body);
  await jwtVerify(own.json().token, new TextEncoder().encode(OWN));
  assert.equal((await gw.app.tokens.verify(own.json().token)).tenant, 'globex');
  assert.equal(
    await code(gw.app.tokens.verify(await gw.mint({ tenant: 'acme', room: 'r', identity: 'i' }))),
    'OK',
    'acme keeps the global secret',
  );
  assert.ok(!gw.logs().includes(OWN), 'a tenant secret never reaches the log');
});
