/**
 * Property-based fuzzing of every REST route in the OpenAPI document and of
 * every signaling method, against a real gateway (real mediasoup workers, real
 * ClickHouse engine). Whatever a client sends, the answer is a 2xx/3xx, or a
 * 4xx or a signaling error carrying one of the stable ERROR_CODES; never a
 * 5xx, never INTERNAL, never a crash, and nothing is logged as an error.
 *
 * The seed is fixed and the number of runs bounded, so a failure reproduces
 * and the file runs in a couple of minutes.
 */
import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import path from 'node:path';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { generateApiKey } from '../src/auth/index.js';
import { ERROR_CODES } from '../src/errors.js';
import { REQUESTS } from '../src/signaling/protocol.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const SEED = Number(process.env.FUZZ_SEED ?? 1111);
const REST_RUNS = Number(process.env.FUZZ_REST_RUNS ?? 100);
const SIGNALING_RUNS = Number(process.env.FUZZ_SIGNALING_RUNS ?? 100);

const ADMIN_KEY = 'fuzz-operator-key-0123456789abcdef';
const ALL_SCOPES_KEY = generateApiKey('fuzzall1');
const ROOM = 'fuzzroom';
const SIG_ROOM = 'fuzzsig';

let gw: TestGateway;
let userToken: string;
let sigToken: string;
/** For the participant that joins before-join connections: another identity, so it never replaces the one under test. */
let beforeToken: string;
/** Ids that exist on the gateway, so generated requests also reach the code behind the NOT_FOUND checks. */
const known = {
  participantIds: [] as string[],
  transportIds: [] as string[],
  producerIds: [] as string[],
  consumerIds: [] as string[],
};

// --- generated values that are not JSON-serializable as-is ---------------------

/**
 * A value nested `levels` deep, far beyond any stack: marked by a placeholder
 * string and spliced in as text, since the test's own JSON.stringify would
 * overflow on the real thing.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL delimits the placeholder, since no generated string can hold it
const DEEP = /"\u0000deep:(\d+):(obj|arr)\u0000"/g;
const deepValue = fc
  .tuple(fc.integer({ min: 2_000, max: 30_000 }), fc.constantFrom('obj', 'arr'))
  .map(([n, k]) => `\u0000deep:${n}:${k}\u0000`);
const serialize = (v: unknown): string =>
  JSON.stringify(v).replace(DEEP, (_m, n: string, k: string) =>
    k === 'obj'
      ? `${'{"a":'.repeat(Number(n))}1${'}'.repeat(Number(n))}`
      : '['.repeat(Number(n)) + ']'.repeat(Number(n)),
  );

/** Something of the wrong kind: any JSON, or a value nested deeper than any stack. */
const junk = fc.oneof({ weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) }, { weight: 1, arbitrary: deepValue });

// --- JSON Schema (from the OpenAPI document or zod) to arbitraries ---------------

type Schema = Record<string, any>;

/** Mostly values the schema accepts (so requests get past validation), sometimes junk at any level. */
function fromSchema(
  s: Schema | undefined,
  hints: Record<string, fc.Arbitrary<unknown>> = {},
  name?: string,
): fc.Arbitrary<unknown> {
  const valid = validFromSchema(s ?? {}, hints, name);
  return fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: junk });
}

function validFromSchema(
  s: Schema,
  hints: Record<string, fc.Arbitrary<unknown>>,
  name?: string,
): fc.Arbitrary<unknown> {
  if (name && hints[name])
    return fc.oneof({ weight: 3, arbitrary: hints[name]! }, { weight: 1, arbitrary: plain(s, hints) });
  return plain(s, hints);
}

function plain(s: Schema, hints: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  if (Array.isArray(s.enum)) return fc.constantFrom(...s.enum);
  if (s.const !== undefined) return fc.constant(s.const);
  const alternatives = s.anyOf ?? s.oneOf;
  if (Array.isArray(alternatives) && alternatives.length)
    return fc.oneof(...alternatives.map((a: Schema) => validFromSchema(a, hints)));
  if (Array.isArray(s.allOf) && s.allOf.length) return validFromSchema(s.allOf[0], hints);
  switch (s.type) {
    case 'string':
      if (s.format === 'date-time')
        return fc
          .date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
          .map((d) => d.toISOString());
      if (s.format === 'uuid') return fc.uuid();
      if (s.format === 'uri') return fc.webUrl();
      if (typeof s.pattern === 'string')
        return fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length <= (s.maxLength ?? 4096));
      return fc.string({ minLength: s.minLength ?? 0, maxLength: Math.min(s.maxLength ?? 64, 300), unit: 'grapheme' });
    case 'integer':
      return fc.integer({
        min: Math.max(s.minimum ?? -(2 ** 31), Number.MIN_SAFE_INTEGER),
        max: Math.min(s.maximum ?? 2 ** 31, Number.MAX_SAFE_INTEGER),
      });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e15, max: s.maximum ?? 1e15, noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'array':
      return fc.array(fromSchema(s.items, hints), {
        minLength: s.minItems ?? 0,
        maxLength: Math.max(s.minItems ?? 0, Math.min(s.maxItems ?? 4, 4)),
      });
    case 'object': {
      const props: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, Schema>))
        props[k] = fromSchema(v, hints, k);
      const record = fc.record(props, { requiredKeys: (s.required ?? []).filter((k: string) => k in props) });
      if (!s.additionalProperties || Object.keys(props).length) return record;
      return fc.dictionary(
        fc.string({ maxLength: 16 }),
        fromSchema(s.additionalProperties === true ? {} : s.additionalProperties, hints),
        { maxKeys: 4 },
      );
    }
    default:
      return fc.jsonValue({ maxDepth: 3 });
  }
}

// --- answers -------------------------------------------------------------------

const CODES: readonly string[] = ERROR_CODES;

function assertRestAnswer(what: string, status: number, body: string): void {
  assert.ok(status < 500, `${what} → ${status} ${body.slice(0, 300)}`);
  if (status < 400) return;
  let code: unknown;
  try {
    code = JSON.parse(body).error?.code;
  } catch {
    /* not JSON: reported below */
  }
  assert.ok(
    typeof code === 'string' && CODES.includes(code) && code !== 'INTERNAL',
    `${what} → ${status} without a stable error code: ${body.slice(0, 300)}`,
  );
}

function assertSignalingAnswer(what: string, frame: any): void {
  if (frame.ok === true) return;
  const code = frame.error?.code;
  assert.ok(CODES.includes(code) && code !== 'INTERNAL', `${what} → ${JSON.stringify(frame).slice(0, 300)}`);
}

/**
 * Error-level lines (pino: 50 and above). Nothing a client sends may cause
 * one: not a request failing as our fault (REST: reqId; signaling: its
 * component), nor a flow it started failing later (a recorder, say).
 */
function loggedErrors(): string[] {
  return gw
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .filter((l) => (JSON.parse(l) as { level: number }).level >= 50);
}

// --- a raw signaling connection: one request in flight at a time ---------------

class RawSocket {
  readonly ws: WebSocket;
  #waiting?: { resolve: (f: any) => void; reject: (e: Error) => void };
  #closed?: { code: number; reason: string };
  #nextId = 1;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.notification) return;
      const w = this.#waiting;
      this.#waiting = undefined;
      w?.resolve(frame);
    });
    this.ws.on('close', (code, reason) => {
      this.#closed = { code, reason: reason.toString() };
      this.#waiting?.reject(new Error(`socket closed (${code} ${reason.toString()})`));
    });
  }

  static async open(url: string): Promise<RawSocket> {
    const s = new RawSocket(url);
    await new Promise<void>((resolve, reject) => {
      s.ws.once('open', () => resolve());
      s.ws.once('error', reject);
    });
    return s;
  }

  /** Sends a raw frame and resolves with the next response (not notification). */
  send(frame: string | Buffer): Promise<any> {
    if (this.#closed) return Promise.reject(new Error(`socket closed (${this.#closed.code} ${this.#closed.reason})`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer within 30 s')), 30_000);
      this.#waiting = {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.ws.send(frame);
    });
  }

  request(method: string, data: unknown): Promise<any> {
    return this.send(serialize({ id: this.#nextId++, method, data }));
  }

  async ok(method: string, data: unknown): Promise<any> {
    const f = await this.request(method, data);
    assert.equal(f.ok, true, `${method}: ${JSON.stringify(f)}`);
    return f.data;
  }

  /** Closes and waits for the server's side to close, so the connection no longer counts against any per-address cap. */
  async close(): Promise<void> {
    if (this.#closed) return;
    const closed = new Promise((r) => this.ws.once('close', r));
    this.ws.close();
    await closed;
  }
}

const OPUS = {
  mimeType: 'audio/opus',
  payloadType: 100,
  clockRate: 48000,
  channels: 2,
  parameters: {},
  rtcpFeedback: [],
};
let ssrc = 1000;
const audioRtpParameters = () => ({
  mid: '0',
  codecs: [OPUS],
  headerExtensions: [],
  encodings: [{ ssrc: ssrc++ }],
  rtcp: { cname: 'fuzz', reducedSize: true },
});

/** A participant with a send and a receive transport and one audio track. */
async function joinedSocket(token: string): Promise<{ s: RawSocket; rtpCapabilities: unknown; peerId: string }> {
  const s = await RawSocket.open(gw.wsUrl);
  const joined = await s.ok('join', { token });
  const send = await s.ok('createWebRtcTransport', { direction: 'send' });
  const recv = await s.ok('createWebRtcTransport', { direction: 'recv' });
  const { producerId } = await s.ok('produce', {
    transportId: send.transportId,
    kind: 'audio',
    rtpParameters: audioRtpParameters(),
    source: 'mic',
  });
  known.transportIds.push(send.transportId, recv.transportId);
  known.producerIds.push(producerId);
  return { s, rtpCapabilities: joined.rtpCapabilities, peerId: joined.peerId };
}

// Started while the file is collected: each route of the OpenAPI document, and each signaling method, is a test
// of its own, and the routes are only known once the gateway serves its document.
gw = await startGateway({
  adminKeyHash: `sha256:${createHash('sha256').update(ADMIN_KEY).digest('hex')}`,
  api: { ratePerMinute: 100_000_000 },
  signaling: { ratePerSecond: 10_000, rateBurst: 10_000 },
  tenants: [
    {
      id: 'acme',
      apiKeys: [
        {
          id: 'fuzzall1',
          hash: ALL_SCOPES_KEY.hash,
          scopes: ['tokens:mint', 'rooms:read', 'rooms:write', 'recordings:read', 'dpo', 'admin'],
        },
      ],
    },
    { id: 'globex', apiKeys: [] },
  ],
});
userToken = await gw.mint({ room: ROOM, identity: 'fuzz-user', grants: ['publish', 'subscribe', 'record', 'admin'] });
sigToken = await gw.mint({ room: SIG_ROOM, identity: 'fuzz-sig', grants: ['publish', 'subscribe', 'record', 'admin'] });
beforeToken = await gw.mint({
  room: SIG_ROOM,
  identity: 'fuzz-before',
  grants: ['publish', 'subscribe', 'record', 'admin'],
});

afterAll(async () => {
  await gw?.close();
});

const doc = (await (await fetch(`${gw.url}/docs/openapi.json`)).json()) as {
  paths: Record<string, Record<string, Schema>>;
};
const routes = Object.entries(doc.paths).flatMap(([p, ops]) =>
  Object.entries(ops).map(([method, op]) => ({ path: p, method: method.toUpperCase(), op })),
);

describe('every REST route in the OpenAPI document answers any input with a 2xx-4xx and a stable error code, never a 5xx', () => {
  let live: Awaited<ReturnType<typeof joinedSocket>>;
  beforeAll(async () => {
    // A live room with a participant, so participant routes reach past NOT_FOUND.
    live = await joinedSocket(
      await gw.mint({ room: ROOM, identity: 'fuzz-present', grants: ['publish', 'subscribe'] }),
    );
    known.participantIds.push(live.peerId);
  });
  afterAll(() => live?.s.close());

  test('the document lists the API', () => {
    assert.ok(routes.length >= 25, `only ${routes.length} routes in the OpenAPI document`);
  });

  const hints: Record<string, fc.Arbitrary<unknown>> = {
    room: fc.constantFrom(ROOM, SIG_ROOM),
    participantId: fc.constant(null).chain(() => fc.constantFrom(...known.participantIds)),
    tenant: fc.constantFrom('globex', 'fuzz-new'),
    identity: fc.constantFrom('fuzz-user', 'fuzz-present'),
    // A cursor as the API hands them out (base64url), forged.
    cursor: fc
      .oneof(
        fc.string({ maxLength: 40 }),
        fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })).map(([ms, id]) => `${ms}|${id}`),
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? ''),
        fc
          .record({ startedMs: fc.oneof(fc.integer(), fc.double()), id: fc.oneof(fc.uuid(), fc.string()) })
          .map((v) => JSON.stringify(v)),
      )
      .chain((v) => fc.constantFrom(v, Buffer.from(v).toString('base64url'))),
  };

  for (const route of routes) {
    test(`${route.method} ${route.path}`, async () => {
      const params: Schema[] = route.op.parameters ?? [];
      const pathParams = params.filter((p) => p.in === 'path');
      const queryParams = params.filter((p) => p.in === 'query');
      const bodySchema: Schema | undefined = route.op.requestBody?.content?.['application/json']?.schema;
      const adminRoute = JSON.stringify(route.op.security ?? []).includes('adminKey');
      const request = fc.record({
        path: fc.record(
          Object.fromEntries(
            pathParams.map((p) => [
              p.name,
              fc.oneof(
                { weight: 4, arbitrary: validFromSchema(p.schema ?? {}, hints, p.name) },
                { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
              ),
            ]),
          ),
        ),
        query: fc.tuple(
          fc.record(Object.fromEntries(queryParams.map((p) => [p.name, fromSchema(p.schema, hints, p.name)])), {
            requiredKeys: [],
          }),
          fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 2 }),
        ),
        body: fc.oneof(
          { weight: 6, arbitrary: fromSchema(bodySchema, hints).map((v) => serialize(v)) },
          { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
        ),
        auth: adminRoute
          ? fc.constantFrom('admin', 'admin', 'admin', 'key', 'none')
          : fc.constantFrom('key', 'key', 'key', 'bearer', 'none'),
        // Now and then a forged credential instead (a key id with a wrong secret, any string, a corrupted JWT).
        forged: fc.option(
          fc.oneof(
            fc.string({ maxLength: 40 }).map((v) => ({ 'x-api-key': `vk_fuzzall1_${v}` })),
            fc.string({ maxLength: 80 }).map((v) => ({ 'x-api-key': v })),
            fc.string({ maxLength: 80 }).map((v) => ({ 'x-admin-key': v })),
            fc.string({ maxLength: 200 }).map((v) => ({ authorization: v })),
            fc
              .integer({ min: 0, max: 300 })
              .map((i) => ({ authorization: `Bearer ${userToken.slice(0, i)}x${userToken.slice(i + 1)}` })),
          ),
          { freq: 8 },
        ),
        contentType: fc.option(
          fc.constantFrom(
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'application/json; charset=latin1',
            'application/jsonx',
            '',
          ),
          { freq: 8 },
        ),
      });
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          let url = route.path.replace(
            /\{(\w+)\}/g,
            (_m, name: string) => encodeURIComponent(String((r.path as Record<string, unknown>)[name] ?? '')) || '%20',
          );
          const qs = new URLSearchParams();
          for (const [k, v] of Object.entries({ ...r.query[1], ...r.query[0] }))
            qs.append(k, typeof v === 'string' ? v : serialize(v));
          if ([...qs].length) url += `?${qs}`;
          const headers: Record<string, string> = {};
          if (r.auth === 'admin') headers['x-admin-key'] = ADMIN_KEY;
          if (r.auth === 'key') headers['x-api-key'] = ALL_SCOPES_KEY.key;
          if (r.auth === 'bearer') headers.authorization = `Bearer ${userToken}`;
          const withBody = route.method !== 'GET' && route.method !== 'HEAD';
          if (withBody) headers['content-type'] = r.contentType ?? 'application/json';
          if (r.forged) Object.assign(headers, r.forged);
          const res = await fetch(`${gw.url}${url}`, {
            method: route.method,
            headers,
            body: withBody ? r.body : undefined,
            redirect: 'manual',
          });
          assertRestAnswer(
            `${route.method} ${url} body=${withBody ? r.body.slice(0, 200) : ''}`,
            res.status,
            await res.text(),
          );
        }),
        { seed: SEED, numRuns: REST_RUNS, endOnFailure: true },
      );
    });
  }
});

test('the pages outside the OpenAPI document (/join, /embed, /sdk/…) answer any query or path below 500', async () => {
  const page = fc.record({
    path: fc.oneof(
      fc.constantFrom('/join', '/embed', '/', '/sdk/vigie-sdk.js'),
      fc.string({ maxLength: 60 }).map((p) => `/sdk/${p}`),
      fc.string({ maxLength: 60 }).map((p) => `/${encodeURI(p)}`),
    ),
    token: fc.oneof(
      fc.constant(userToken),
      fc.string({ maxLength: 200 }),
      fc
        .constant(userToken)
        .chain((t) => fc.integer({ min: 0, max: t.length - 1 }).map((i) => `${t.slice(0, i)}x${t.slice(i + 1)}`)),
    ),
    extra: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 2 }),
    repeated: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(page, async (r) => {
      const qs = new URLSearchParams({ ...r.extra, token: r.token });
      if (r.repeated) qs.append('token', r.token);
      const res = await fetch(`${gw.url}${r.path}?${qs}`);
      const body = await res.text();
      assert.ok(res.status < 500, `GET ${r.path}?${qs} → ${res.status} ${body.slice(0, 300)}`);
    }),
    { seed: SEED, numRuns: REST_RUNS, endOnFailure: true },
  );
});

describe('every signaling method answers any data, before and after joining, with a stable error code, never INTERNAL', () => {
  const hints: Record<string, fc.Arbitrary<unknown>> = {
    transportId: fc.constant(null).chain(() => fc.constantFrom(...known.transportIds)),
    producerId: fc.constant(null).chain(() => fc.constantFrom(...known.producerIds)),
    consumerId: fc
      .constant(null)
      .chain(() => fc.constantFrom(...known.producerIds, ...(known.consumerIds.length ? known.consumerIds : ['none']))),
  };
  let other: Awaited<ReturnType<typeof joinedSocket>>;
  let me: Awaited<ReturnType<typeof joinedSocket>>;
  beforeAll(async () => {
    // Another participant's track, for the fuzzed participant to consume.
    other = await joinedSocket(
      await gw.mint({ room: SIG_ROOM, identity: 'fuzz-other', grants: ['publish', 'subscribe'] }),
    );
    me = await joinedSocket(sigToken);
    const recvId = known.transportIds.at(-1)!;
    const consumed = await me.s.ok('consume', {
      transportId: recvId,
      producerId: known.producerIds.at(-2),
      rtpCapabilities: me.rtpCapabilities,
    });
    known.consumerIds.push(consumed.consumerId);
    hints.rtpCapabilities = fc.constant(me.rtpCapabilities);
    hints.rtpParameters = fc.constant(null).map(() => audioRtpParameters());
  });

  const dataFor = (method: string, token: string) => {
    const schema = z.toJSONSchema(REQUESTS[method as keyof typeof REQUESTS], {
      io: 'input',
      unrepresentable: 'any',
    }) as Schema;
    return fromSchema(schema, { ...hints, token: fc.constant(token) });
  };

  // A connection of its own per method: a connection that never joins is not meant to live long.
  for (const method of Object.keys(REQUESTS)) {
    test(`${method}, before joining`, async () => {
      const before = await RawSocket.open(gw.wsUrl);
      await fc.assert(
        fc.asyncProperty(dataFor(method, beforeToken), async (data) => {
          const f = await before.request(method, data);
          assertSignalingAnswer(`${method} ${serialize(data).slice(0, 200)} (not joined)`, f);
          if (f.ok && method === 'join') await before.ok('leave', {});
        }),
        { seed: SEED, numRuns: SIGNALING_RUNS, endOnFailure: true },
      );
      await before.close();
    });
  }

  for (const method of Object.keys(REQUESTS)) {
    test(`${method}, joined`, async () => {
      await fc.assert(
        fc.asyncProperty(dataFor(method, sigToken), async (data) => {
          // Leaving ends the session under test: it gets a session of its own.
          const session =
            method === 'leave'
              ? (
                  await joinedSocket(
                    await gw.mint({ room: SIG_ROOM, identity: 'fuzz-leaver', grants: ['publish', 'subscribe'] }),
                  )
                ).s
              : me.s;
          const f = await session.request(method, data);
          assertSignalingAnswer(`${method} ${serialize(data).slice(0, 200)} (joined)`, f);
          if (session !== me.s) await session.close();
        }),
        { seed: SEED, numRuns: SIGNALING_RUNS, endOnFailure: true },
      );
    });
  }

  test('raw frames: not JSON, wrong envelopes, binary, deep nesting', async () => {
    const frame = fc.oneof(
      fc.string({ maxLength: 200 }),
      junk.map(serialize),
      fc
        .record(
          { id: junk, method: fc.oneof(fc.constantFrom(...Object.keys(REQUESTS)), fc.string()), data: junk },
          { requiredKeys: [] },
        )
        .map(serialize),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
    );
    const unjoined = await RawSocket.open(gw.wsUrl);
    await fc.assert(
      fc.asyncProperty(frame, fc.boolean(), async (raw, joined) => {
        const f = await (joined ? me.s : unjoined).send(raw);
        assertSignalingAnswer(`raw frame ${String(raw).slice(0, 200)}`, f);
      }),
      { seed: SEED, numRuns: SIGNALING_RUNS * 4, endOnFailure: true },
    );
    await unjoined.close();
  });

  test('still joined and served after all of that', async () => {
    assert.equal((await me.s.request('getRouterRtpCapabilities', {})).ok, true);
    await other.s.close();
    await me.s.close();
  });
});

// --- focused regressions: each input the fuzzer (or the issue) found, on its own ---

const restCall = async (method: string, url: string, body?: string) => {
  const res = await fetch(`${gw.url}${url}`, {
    method,
    headers: { 'x-api-key': ALL_SCOPES_KEY.key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body,
  });
  return { status: res.status, body: (await res.json()) as any };
};

test('POST /v1/tokens: metadata nested 20 000 levels deep is a 400 naming metadata, not a 500 (stack overflow when signing)', async () => {
  const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
  const r = await restCall('POST', '/v1/tokens', `{"room":"r1","identity":"u1","metadata":${deep}}`);
  assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
  assert.equal(r.body.error.code, 'INVALID_REQUEST');
  assert.match(r.body.error.message, /^metadata: nested deeper than 8 levels/);
  // Metadata within the limits still mints a token that verifies.
  const ok = await restCall(
    'POST',
    '/v1/tokens',
    JSON.stringify({ room: 'r1', identity: 'u1', metadata: { a: { b: { c: [1, 'x', null] } } } }),
  );
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual((await gw.app.tokens.verify(ok.body.token)).metadata, { a: { b: { c: [1, 'x', null] } } });
  // Too large as a whole, or one string too long: refused too, before the token would outgrow what verify accepts.
  for (const metadata of [
    { s: 'x'.repeat(1025) },
    Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'y'.repeat(1000)])),
  ]) {
    const big = await restCall('POST', '/v1/tokens', JSON.stringify({ room: 'r1', identity: 'u1', metadata }));
    assert.equal(big.status, 400, JSON.stringify(big.body));
  }
});

test('POST /v1/rooms: room metadata is bounded like token metadata (values and total size)', async () => {
  const many = Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`k${i}`, 'v']));
  const r = await restCall('POST', '/v1/rooms', JSON.stringify({ room: 'meta-room', metadata: many }));
  assert.equal(r.status, 400, JSON.stringify(r.body).slice(0, 300));
  assert.match(r.body.error.message, /^metadata: more than 256 values/);
  const ok = await restCall('POST', '/v1/rooms', JSON.stringify({ room: 'meta-room', metadata: { crm: 'ticket-42' } }));
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
});

test('a signed access token whose metadata nests too deep is refused as invalid claims', async () => {
  const { SignJWT } = await import('jose');
  // Arrays, to nest deep within the 8192 characters a token may have.
  const deep = { a: JSON.parse('['.repeat(1_500) + ']'.repeat(1_500)) };
  const token = await new SignJWT({ tenant: 'acme', room: SIG_ROOM, grants: ['subscribe'], metadata: deep })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer(gw.config.auth.issuer)
    .setAudience(gw.config.auth.audience)
    .setSubject('deep-meta')
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(gw.config.auth.hs256Secret!));
  await assert.rejects(
    gw.app.tokens.verify(token),
    (err: any) => err.code === 'UNAUTHORIZED' && /metadata: nested deeper/.test(err.message),
  );
});

test('GET /v1/recordings: a forged cursor is a 400 naming the cursor, never NaN sent to ClickHouse', async () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64url');
  const forged = [
    b64('x|y'), // the old format with a non-numeric time: NaN
    b64('{"startedMs":-1.7976931348623157e308,"id":"256039f9-33ad-451a-8000-0017603045a3"}'),
    b64('{"startedMs":1,"id":"\' OR 1=1 --"}'),
    b64('{"startedMs":1.5,"id":"256039f9-33ad-451a-8000-0017603045a3"}'),
    b64('[]'),
    'not base64!',
  ];
  for (const cursor of forged) {
    const r = await restCall('GET', `/v1/recordings?cursor=${encodeURIComponent(cursor)}`);
    assert.equal(r.status, 400, `${cursor}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'INVALID_REQUEST');
    assert.match(r.body.error.message, /^cursor: not a cursor this API issued/);
  }
  const valid = await restCall(
    'GET',
    `/v1/recordings?cursor=${b64('{"startedMs":1795978000000,"id":"256039f9-33ad-451a-8000-0017603045a3"}')}`,
  );
  assert.equal(valid.status, 200, JSON.stringify(valid.body));
});

test('signaling: data nested deeper than the limit is INVALID_REQUEST before mediasoup clones it', async () => {
  const { s } = await joinedSocket(
    await gw.mint({ room: SIG_ROOM, identity: 'fuzz-deep', grants: ['publish', 'subscribe'] }),
  );
  const transportId = known.transportIds.at(-2)!;
  const deep = '['.repeat(20_000) + ']'.repeat(20_000);
  const rtp = serialize({ ...audioRtpParameters(), mid: '7' }).replace(/}$/, `,"extra":${deep}}`);
  const f = await s.send(
    `{"id":1,"method":"produce","data":{"transportId":"${transportId}","kind":"video","source":"camera","rtpParameters":${rtp}}}`,
  );
  assert.equal(f.ok, false);
  assert.equal(f.error.code, 'INVALID_REQUEST', JSON.stringify(f));
  assert.match(f.error.message, /nested deeper than 16 levels/);
  await s.close();
});

test('signaling: a track whose SSRC or MID is already routed on the transport, and a second connectTransport, are INVALID_REQUEST, not INTERNAL', async () => {
  const usedSsrc = ssrc; // the next one audioRtpParameters hands out: joinedSocket's track
  const { s } = await joinedSocket(
    await gw.mint({ room: SIG_ROOM, identity: 'fuzz-dup', grants: ['publish', 'subscribe'] }),
  );
  const [sendId, recvId] = known.transportIds.slice(-2) as [string, string];
  // joinedSocket produced mid 0 with usedSsrc on this transport.
  const sameMid = await s.request('produce', {
    transportId: sendId,
    kind: 'audio',
    source: 'screen-audio',
    rtpParameters: { ...audioRtpParameters(), mid: '0' },
  });
  assert.equal(sameMid.error?.code, 'INVALID_REQUEST', JSON.stringify(sameMid));
  assert.match(sameMid.error.message, /mid 0 is already used/);
  const sameSsrc = await s.request('produce', {
    transportId: sendId,
    kind: 'audio',
    source: 'screen-audio',
    rtpParameters: { ...audioRtpParameters(), mid: '1', encodings: [{ ssrc: usedSsrc }] },
  });
  assert.equal(sameSsrc.error?.code, 'INVALID_REQUEST', JSON.stringify(sameSsrc));
  assert.match(sameSsrc.error.message, /ssrc \d+ is already used/);
  // A distinct MID and SSRC on the same transport is still accepted.
  assert.equal(
    (
      await s.request('produce', {
        transportId: sendId,
        kind: 'audio',
        source: 'screen-audio',
        rtpParameters: { ...audioRtpParameters(), mid: '1' },
      })
    ).ok,
    true,
  );

  const dtlsParameters = {
    role: 'client',
    fingerprints: [{ algorithm: 'sha-256', value: Array.from({ length: 32 }, () => 'AB').join(':') }],
  };
  assert.equal((await s.request('connectTransport', { transportId: recvId, dtlsParameters })).ok, true);
  const again = await s.request('connectTransport', { transportId: recvId, dtlsParameters });
  assert.equal(again.error?.code, 'INVALID_REQUEST', JSON.stringify(again));
  assert.match(again.error.message, /already connected/);
  await s.close();
});

test('signaling: malformed RTP parameters and capabilities are refused by the schema, naming the field, before mediasoup sees them', async () => {
  const other = await joinedSocket(
    await gw.mint({ room: SIG_ROOM, identity: 'fuzz-rtp-other', grants: ['publish', 'subscribe'] }),
  );
  const producerId = known.producerIds.at(-1)!; // other's track, to consume
  const { s } = await joinedSocket(
    await gw.mint({ room: SIG_ROOM, identity: 'fuzz-rtp', grants: ['publish', 'subscribe'] }),
  );
  const [sendId, recvId] = known.transportIds.slice(-2) as [string, string];
  const base = { ...audioRtpParameters(), mid: '5' };
  const opus = base.codecs[0]!;
  const badParameters: Array<[string, unknown]> = [
    ['codecs.0.mimeType', { ...base, codecs: [{ ...opus, mimeType: 'opus' }] }],
    ['codecs.0.clockRate', { ...base, codecs: [{ ...opus, clockRate: '48000' }] }],
    ['codecs.0.parameters', { ...base, codecs: [{ ...opus, parameters: { useinbandfec: [1] } }] }],
    ['codecs.0.parameters.apt', { ...base, codecs: [{ ...opus, parameters: { apt: '100' } }] }],
    ['codecs.0.rtcpFeedback.0.type', { ...base, codecs: [{ ...opus, rtcpFeedback: [{ parameter: 'pli' }] }] }],
    ['codecs', { ...base, codecs: [opus, { ...opus }] }],
    ['headerExtensions.0.id', { ...base, headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 0 }] }],
    ['encodings.0.ssrc', { ...base, encodings: [{ ssrc: 2 ** 32 }] }],
    ['encodings.0.rtx.ssrc', { ...base, encodings: [{ ssrc: 5, rtx: {} }] }],
    ['rtcp.reducedSize', { ...base, rtcp: { reducedSize: 'yes' } }],
  ];
  for (const [field, rtpParameters] of badParameters) {
    const f = await s.request('produce', { transportId: sendId, kind: 'audio', source: 'screen-audio', rtpParameters });
    assert.equal(f.error?.code, 'INVALID_REQUEST', `${field}: ${JSON.stringify(f)}`);
    assert.ok(
      f.error.message.startsWith(`invalid produce request: rtpParameters.${field}`),
      `${field}: ${f.error.message}`,
    );
  }
  for (const [field, rtpCapabilities] of [
    ['codecs.0.mimeType', { codecs: [{ mimeType: 7, clockRate: 48000 }] }],
    ['headerExtensions.0.kind', { codecs: [], headerExtensions: [{ kind: 'data', uri: 'x', preferredId: 1 }] }],
  ] as const) {
    const f = await s.request('consume', { transportId: recvId, producerId, rtpCapabilities });
    assert.equal(f.error?.code, 'INVALID_REQUEST', `${field}: ${JSON.stringify(f)}`);
    assert.ok(
      f.error.message.startsWith(`invalid consume request: rtpCapabilities.${field}`),
      `${field}: ${f.error.message}`,
    );
  }
  await s.close();
  await other.s.close();
});

test('recording: a track closed while its recorder starts is skipped, not a failure to start (found by the fuzz test: startRecording, then closeProducer)', async () => {
  const { Recorder } = await import('../src/recording/index.js');
  const { s } = await joinedSocket(
    await gw.mint({ room: SIG_ROOM, identity: 'fuzz-rec', grants: ['publish', 'subscribe'] }),
  );
  const room = gw.app.sfu.getRoom('acme', SIG_ROOM)!;
  const producer = [...room.peers.values()]
    .find((p) => p.identity === 'fuzz-rec')!
    .producers.values()
    .next().value!;
  // The participant closes the track as soon as the recorder's consumer exists, before the recorder resumes it.
  const closeOnConsumer = (t: any) => t.observer.once('newconsumer', () => producer.close());
  room.router.observer.once('newtransport', closeOnConsumer);
  const dir = path.join(gw.config.dataDir, 'recorder-race');
  const recorder = new Recorder(room.router, [producer], dir, 10, gw.app.log);
  try {
    await recorder.start();
  } finally {
    await recorder.stop();
    await s.close();
  }
  assert.equal(producer.closed, true);
});

test('the gateway is still ready afterwards, and nothing a client sent was logged as an error', async () => {
  const ready = await fetch(`${gw.url}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  assert.deepEqual(
    loggedErrors().map((l) => l.slice(0, 500)),
    [],
  );
});
