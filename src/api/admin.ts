import type { FastifyInstance, RouteShorthandOptions } from 'fastify';
import { z } from 'zod';
import { API_KEY_SCOPES, tenantAuthSchema, type TenantConfig } from '../config/index.js';
import { LANGUAGES } from '../web/i18n.js';
import { requireOperator } from './principal.js';
import { openapi, parse } from './schema.js';
import { addWebhookFromBody, auditWebhook, publicEndpoint, webhookBody } from './webhooks.js';

const tenantParam = z.object({ tenant: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/) });
const keyParam = tenantParam.extend({ keyId: z.string() });
const tenantBody = z.object({
  name: z.string().min(1).max(128).optional(),
  embedOrigins: z.array(z.string()).optional(),
  defaultLanguage: z.enum(LANGUAGES).optional(),
  allowedLocations: z.array(z.string()).optional(),
  retentionPolicy: z.string().optional(),
  /** The tenant's own token trust (replaces the previous one). */
  auth: tenantAuthSchema.optional(),
});
const keyBody = z.object({ scopes: z.array(z.enum(API_KEY_SCOPES)).min(1) });

/** What the admin API shows of a tenant: never a key hash, a token secret or a webhook secret. */
const publicTenant = (t: TenantConfig) => ({
  ...t,
  auth: t.auth && { jwksUrl: t.auth.jwksUrl, hs256Secret: t.auth.hs256Secret ? 'set' : undefined },
  apiKeys: t.apiKeys.map(({ hash: _hash, ...k }) => k),
  webhooks: t.webhooks.map(publicEndpoint),
});

/** Operator API (x-admin-key): tenants, their API keys and webhooks. */
export async function adminRoutes(app: FastifyInstance): Promise<void> {
  const opts = (summary: string, extra: Record<string, unknown> = {}): RouteShorthandOptions => ({
    schema: { tags: ['admin'], summary, security: [{ adminKey: [] }], ...extra },
  });
  app.addHook('onRequest', async (req) => requireOperator(app, req));

  app.get('/v1/admin/tenants', opts('List tenants'), async () => ({ tenants: app.tenants.list().map(publicTenant) }));

  // The registry shared by every node: any node answers for all of them, dead ones included (shown not alive).
  app.get('/v1/admin/nodes', opts('List the nodes, their liveness and load'), async () => ({
    self: app.nodes.registry.id,
    nodes: await app.nodes.registry.list(),
  }));

  app.put(
    '/v1/admin/tenants/:tenant',
    opts('Create or update a tenant', { params: openapi(tenantParam), body: openapi(tenantBody) }),
    async (req) => {
      const { tenant } = parse(tenantParam, req.params);
      const body = parse(tenantBody, req.body);
      const existed = app.tenants.has(tenant);
      // Which settings changed, not their values: a tenant may carry secrets (its token keys), and the chain is
      // forever.
      const t = await app.tenants.upsert(tenant, body);
      await app.compliance?.record({
        tenant,
        actor: 'operator',
        action: existed ? 'tenant.update' : 'tenant.create',
        target: `tenant:${tenant}`,
        sourceIp: req.ip,
        details: { fields: Object.keys(body).sort() },
      });
      req.log.info({ tenant }, 'tenant updated through the admin API');
      return publicTenant(t);
    },
  );

  app.delete(
    '/v1/admin/tenants/:tenant',
    opts('Delete a tenant', { params: openapi(tenantParam) }),
    async (req, reply) => {
      const { tenant } = parse(tenantParam, req.params);
      await app.tenants.remove(tenant);
      await app.compliance?.record({
        tenant,
        actor: 'operator',
        action: 'tenant.delete',
        target: `tenant:${tenant}`,
        sourceIp: req.ip,
      });
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/admin/tenants/:tenant/api-keys',
    opts('Create an API key (returned once)', { params: openapi(tenantParam), body: openapi(keyBody) }),
    async (req, reply) => {
      const { tenant } = parse(tenantParam, req.params);
      const { scopes } = parse(keyBody, req.body);
      const created = await app.tenants.createApiKey(tenant, scopes);
      req.log.info({ tenant, keyId: created.id }, 'API key created');
      await app.compliance?.record({
        tenant,
        actor: 'operator',
        action: 'apikey.create',
        target: `key:${created.id}`,
        sourceIp: req.ip,
        details: { scopes },
      });
      return reply.code(201).send(created);
    },
  );

  app.delete(
    '/v1/admin/tenants/:tenant/api-keys/:keyId',
    opts('Revoke an API key', { params: openapi(keyParam) }),
    async (req, reply) => {
      const { tenant, keyId } = parse(keyParam, req.params);
      await app.tenants.revokeApiKey(tenant, keyId);
      await app.compliance?.record({
        tenant,
        actor: 'operator',
        action: 'apikey.revoke',
        target: `key:${keyId}`,
        sourceIp: req.ip,
      });
      req.log.info({ tenant, keyId }, 'API key revoked');
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/admin/tenants/:tenant/webhooks',
    opts('Add a webhook endpoint to a tenant', { params: openapi(tenantParam), body: openapi(webhookBody) }),
    async (req, reply) => {
      const { tenant } = parse(tenantParam, req.params);
      const endpoint = await addWebhookFromBody(app, tenant, req.body);
      await auditWebhook(app, req, tenant, 'operator', 'webhook.create', endpoint);
      return reply.code(201).send(endpoint);
    },
  );
}
