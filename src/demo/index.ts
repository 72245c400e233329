/**
 * The embedded demo that `npm start` offers on a fresh install: a "demo" tenant
 * and one link that anybody holding it can open to join the demo room.
 *
 * It exists only when no tenant is configured and NODE_ENV is not
 * "production": a deployment with tenants, or the production image, never gets
 * a tenant or key it did not ask for, and never prints a credential to its logs.
 *
 * The link is `/demo/<secret>`. Each visit mints a join token for a new guest
 * identity and redirects to the join page, so two pages opened on the same
 * link are two participants. Real join tokens keep their rule: a second
 * session with the same identity replaces the first.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { generateApiKey } from '../auth/index.js';
import { tenantSchema, type Config } from '../config/index.js';
import { loadOrCreateSecret } from '../dataDir.js';
import { VigieError } from '../errors.js';
import { writeFileAtomicSync } from '../files.js';

export const DEMO_TENANT = 'demo';
export const DEMO_ROOM = 'demo';
/** How long the token minted for one visit lasts: a long demo call must not be cut. */
const GUEST_TOKEN_TTL_S = 12 * 3600;

export interface DemoSetup {
  /** The secret part of the demo link (kept in DATA_DIR/secrets/demo-link). */
  linkSecret: string;
  /** The clear API key, only on the start that created the tenant: only its hash is stored. */
  createdApiKey?: string;
  /** Where the tenant is kept. */
  tenantFile: string;
}

/**
 * Adds the demo tenant to `config.tenants` when the embedded demo applies
 * (see above), creating it with an admin API key on first use.
 */
export function prepareDemo(config: Config, env: NodeJS.ProcessEnv = process.env): DemoSetup | undefined {
  if (config.tenants.length > 0 || env.NODE_ENV === 'production') return undefined;
  const tenantFile = path.join(config.dataDir, 'demo-tenant.json');
  let createdApiKey: string | undefined;
  if (!existsSync(tenantFile)) {
    const { id, key, hash } = generateApiKey();
    mkdirSync(config.dataDir, { recursive: true });
    const tenant = tenantSchema.parse({
      id: DEMO_TENANT,
      name: 'Demo tenant',
      apiKeys: [{ id, hash, scopes: ['admin'] }],
    });
    writeFileAtomicSync(tenantFile, JSON.stringify(tenant, null, 2), { mode: 0o600 });
    createdApiKey = key;
  }
  // Through the tenant schema like every other source: a file written by an
  // older version (no `webhooks`, say) gets today's defaults.
  const parsed = tenantSchema.safeParse(JSON.parse(readFileSync(tenantFile, 'utf8')));
  if (!parsed.success)
    throw new Error(
      `${tenantFile} is not a valid tenant: ` +
        `${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  config.tenants.push(parsed.data);
  return { linkSecret: loadOrCreateSecret(config.dataDir, 'demo-link').value, createdApiKey, tenantFile };
}

export function demoLink(config: Config, demo: DemoSetup): string {
  return `${config.server.publicUrl}/demo/${demo.linkSecret}`;
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `GET /demo/:secret`: one guest token per visit, then the join page. Needs `tokens`. */
export default async function demoPlugin(app: FastifyInstance, opts: { demo: DemoSetup }): Promise<void> {
  let guests = 0;
  app.get<{ Params: { secret: string } }>('/demo/:secret', async (req, reply) => {
    if (!sameSecret(req.params.secret, opts.demo.linkSecret)) throw new VigieError('NOT_FOUND', 'no such demo link');
    const { token } = await app.tokens.mint({
      tenant: DEMO_TENANT,
      room: DEMO_ROOM,
      identity: `guest-${randomBytes(6).toString('hex')}`,
      name: `Guest ${++guests}`,
      grants: ['publish', 'subscribe'],
      ttlSeconds: GUEST_TOKEN_TTL_S,
    });
    return reply
      .header('cache-control', 'no-store')
      .header('referrer-policy', 'no-referrer')
      .redirect(`/join?token=${token}`, 303);
  });
}
