import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { ApiKeyStore, generateApiKey, TokenService, turnCredentials } from '../src/auth/index.js';
import { ACME_KEY, GLOBEX_KEY, REVOKED_KEY, ROOMS_ONLY_KEY, startGateway, type TestGateway } from './helpers/gateway.js';

const SECRET = 'unit-test-secret-0123456789-abcdefghij';
const base = { issuer: 'vigie', audience: 'vigie', hs256Secret: SECRET, clockSkewSeconds: 30, maxIdpTokenAgeSeconds: 3600, tenant: (t: string) => (t === 'acme' || t === 'globex' ? {} : undefined) };
const claims = { tenant: 'acme', room: 'r1', grants: ['publish', 'subscribe'] };
const now = () => Math.floor(Date.now() / 1000);

function hs(payload: Record<string, unknown>, opts: { secret?: string; iss?: string; aud?: string; exp?: number; nbf?: number; sub?: string } = {}) {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).setIssuer(opts.iss ?? 'vigie').setAudience(opts.aud ?? 'vigie').setSubject(opts.sub ?? 'alice').setExpirationTime(opts.exp ?? now() + 600);
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

before(async () => {
  for (const [kid, alg] of [['rsa-1', 'RS256'], ['ec-1', 'ES256'], ['ed-1', 'EdDSA'], ['rsa-2', 'RS256']] as const) {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    keys[kid] = { privateKey: privateKey as CryptoKey, alg };
    if (kid !== 'rsa-2') published.push({ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' });
    else (keys[kid] as any).jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  }
  jwksServer.get('/jwks.json', async () => {
    jwksFetches++;
    return { keys: published };
  });
  await jwksServer.listen({ host: '127.0.0.1', port: 0 });
  jwksUrl = `http://127.0.0.1:${(jwksServer.server.address() as { port: number }).port}/jwks.json`;
});
after(() => jwksServer.close());

function signed(kid: string, payload = claims, extra: { sub?: string } = {}) {
  const k = keys[kid]!;
  return new SignJWT(payload).setProtectedHeader({ alg: k.alg, kid }).setIssuer('vigie').setAudience('vigie').setSubject(extra.sub ?? 'bob').setIssuedAt().setExpirationTime(now() + 600).sign(k.privateKey);
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
    ['wrong secret', async () => svc.verify(await hs(claims, { secret: 'another-secret-of-sufficient-length!!' })), 'UNAUTHORIZED'],
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

test('API keys are checked by hash; revoked and unknown keys are refused', () => {
  const k = generateApiKey('tenantk1');
  const store = new ApiKeyStore([{ id: 't', embedOrigins: [], allowedLocations: ['FR'], retentionPolicy: 'default', webhooks: [], apiKeys: [{ id: 'tenantk1', hash: k.hash, scopes: ['tokens:mint'], revoked: false }] }]);
  assert.equal(store.authenticate(k.key).tenant, 't');
  assert.throws(() => store.authenticate(k.key.slice(0, -1) + (k.key.endsWith('A') ? 'B' : 'A')), { code: 'UNAUTHORIZED' });
  assert.throws(() => store.authenticate('vk_nobody00_' + 'x'.repeat(43)), { code: 'UNAUTHORIZED' });
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
test('POST /v1/tokens mints a join token and link for the API key\'s tenant', async (t) => {
  gw = await startGateway();
  t.after(() => gw.close());
  const res = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: { 'x-api-key': ACME_KEY.key }, payload: { room: 'support-42', identity: 'customer-7', name: 'Ada', ttlSeconds: 300 } });
  assert.equal(res.statusCode, 200, res.body);
  const body = res.json();
  assert.match(body.joinUrl, new RegExp(`^${gw.url}/join\\?token=`));
  const verified = await gw.app.tokens.verify(body.token);
  assert.equal(verified.tenant, 'acme');
  assert.equal(verified.room, 'support-42');
  assert.ok(verified.expiresAt - now() <= 300 && verified.expiresAt - now() > 290);

  const cases: Array<[string, Record<string, string>, unknown, number, string]> = [
    ['no key', {}, { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
    ['bad key', { 'x-api-key': 'vk_acme01_' + 'x'.repeat(43) }, { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
    ['revoked key', { 'x-api-key': REVOKED_KEY.key }, { room: 'r', identity: 'i' }, 401, 'UNAUTHORIZED'],
    ['wrong scope', { 'x-api-key': ROOMS_ONLY_KEY.key }, { room: 'r', identity: 'i' }, 403, 'FORBIDDEN'],
    ['bad room', { 'x-api-key': ACME_KEY.key }, { room: '../x', identity: 'i' }, 400, 'INVALID_REQUEST'],
    ['ttl too long', { 'x-api-key': ACME_KEY.key }, { room: 'r', identity: 'i', ttlSeconds: 10 ** 7 }, 400, 'INVALID_REQUEST'],
    ['unknown grant', { 'x-api-key': ACME_KEY.key }, { room: 'r', identity: 'i', grants: ['root'] }, 400, 'INVALID_REQUEST'],
  ];
  for (const [name, headers, payload, status, errCode] of cases) {
    const r = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers, payload: payload as object });
    assert.equal(r.statusCode, status, `${name}: ${r.body}`);
    assert.equal(r.json().error.code, errCode, name);
  }
  // A key only ever mints for its own tenant.
  const g = await gw.app.inject({ method: 'POST', url: '/v1/tokens', headers: { authorization: `Bearer ${GLOBEX_KEY.key}` }, payload: { room: 'support-42', identity: 'x' } });
  assert.equal((await gw.app.tokens.verify(g.json().token)).tenant, 'globex');
  assert.ok(!gw.logs().includes(ACME_KEY.key) && !gw.logs().includes(body.token), 'secrets never reach the log');
});
