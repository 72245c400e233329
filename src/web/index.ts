/**
 * Web pages: the join page (`/join?token=…`), the embeddable page
 * (`/embed?token=…`) and the browser SDK bundle (`/sdk/*`).
 *
 * Needs `config` and `tokens`. The SDK is bundled by scripts/build-sdk.ts into
 * dist/public. /embed may only be framed by the origins its tenant allows
 * (CSP frame-ancestors); /join may not be framed at all.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import { toVigieError } from '../errors.js';
import { signalingUrlOf } from '../nodes/index.js';
import { pickLanguage } from './i18n.js';
import { EARLY_JOIN_CSP_SOURCE } from './earlyJoin.js';
import { callPage, errorPage, type PageKind } from './pages.js';

/** dist/public at the project root, whether this module runs from src/ (tsx) or from the build in dist/server/. */
export const PUBLIC_DIR = path.resolve(projectRoot(path.dirname(fileURLToPath(import.meta.url))), 'dist/public');

function projectRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir))
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  return process.cwd();
}

function securityHeaders(reply: FastifyReply, frameAncestors: string, connectTo: string[] = []): void {
  reply
    .header(
      'content-security-policy',
      [
        "default-src 'self'",
        `script-src 'self' ${EARLY_JOIN_CSP_SOURCE}`,
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        ["connect-src 'self'", ...connectTo].join(' '),
        `frame-ancestors ${frameAncestors}`,
      ].join('; '),
    )
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('permissions-policy', 'camera=(self), microphone=(self), display-capture=(self)')
    .type('text/html; charset=utf-8');
}

export default async function webPlugin(app: FastifyInstance): Promise<void> {
  if (!existsSync(path.join(PUBLIC_DIR, 'vigie-sdk.js'))) {
    throw new Error(`browser SDK bundle missing in ${PUBLIC_DIR}; run "npm run build:sdk"`);
  }
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/sdk/', cacheControl: true, maxAge: '1h' });

  type PageRequest = { query: unknown; headers: { 'accept-language'?: string } };
  const language = (req: PageRequest, tenant?: string) =>
    pickLanguage({
      query: (req.query as { lang?: unknown }).lang,
      acceptLanguage: req.headers['accept-language'],
      tenantDefault: tenant ? app.tenants.get(tenant)?.defaultLanguage : undefined,
    });

  // A call page's SDK may be sent to another node (REDIRECT) or rejoin through one: their signaling is allowed.
  const clusterSignaling = () => [
    ...new Set(app.nodes.registry.lastLive().map((n) => new URL(signalingUrlOf(n.publicUrl)).origin)),
  ];
  const page = (kind: PageKind) => async (req: PageRequest, reply: FastifyReply) => {
    const token = (req.query as { token?: unknown }).token;
    // The answer depends on Accept-Language: caches must key on it.
    reply.header('vary', 'accept-language');
    try {
      const claims = await app.tokens.verify(token);
      const tenant = app.tenants.get(claims.tenant);
      // Only the embed page may be framed: by the page's own origin and those its tenant allows.
      const allowed = kind === 'embed' ? (tenant?.embedOrigins ?? []).filter((o) => o !== "'self'") : [];
      securityHeaders(reply, kind === 'embed' ? ["'self'", ...allowed].join(' ') : "'none'", clusterSignaling());
      return reply.send(
        callPage(kind, {
          embedOrigins: allowed,
          lang: language(req, claims.tenant),
          askName: claims.name === undefined,
        }),
      );
    } catch (err) {
      const e = toVigieError(err);
      securityHeaders(reply, "'none'");
      return reply.code(e.httpStatus).send(errorPage(e, language(req)));
    }
  };
  app.get('/join', page('join'));
  app.get('/embed', page('embed'));
  app.get('/', async (req, reply) => {
    securityHeaders(reply, "'none'");
    reply.header('vary', 'accept-language');
    return reply.send(errorPage(null, language(req)));
  });
}
