import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WebhookEndpointConfig } from '../config/index.js';
import { assertPublicTarget, WEBHOOK_EVENTS } from '../webhooks/index.js';
import { authenticate, requireScope } from './principal.js';
import { openapi, parse } from './schema.js';

export const webhookBody = z.object({
  url: z.url().max(2048),
  events: z
    .array(z.union([z.enum(WEBHOOK_EVENTS), z.literal('*')]))
    .min(1)
    .default(['*']),
});
const idParam = z.object({ id: z.string().min(1).max(64) });
const createdEndpoint = z.object({
  id: z.string(),
  url: z.url(),
  events: z.array(z.string()),
  secret: z.string().describe('the signing secret of Vigie-Signature, shown this once'),
  enabled: z.boolean(),
});

/** The secret is shown once, at creation; listings never carry it. */
export const publicEndpoint = ({ secret: _secret, ...rest }: WebhookEndpointConfig) => rest;

/** Adds an endpoint from a request body: validated, and refused when it points at a private network (SSRF). */
export async function addWebhookFromBody(
  app: FastifyInstance,
  tenant: string,
  rawBody: unknown,
): Promise<WebhookEndpointConfig> {
  const body = parse(webhookBody, rawBody);
  await assertPublicTarget(body.url, app.config.webhooks.allowPrivateTargets, app.config.webhooks.allowHttp);
  return app.tenants.addWebhook(tenant, body);
}

/** Webhook changes are audited: where a tenant's call events go is the tenant's data flow. The secret never is. */
export async function auditWebhook(
  app: FastifyInstance,
  req: FastifyRequest,
  tenant: string,
  actor: string,
  action: string,
  endpoint: Pick<WebhookEndpointConfig, 'id'> & Partial<WebhookEndpointConfig>,
): Promise<void> {
  const { secret: _secret, ...details } = endpoint;
  await app.compliance?.record({ tenant, actor, action, target: `webhook:${endpoint.id}`, sourceIp: req.ip, details });
}

export async function webhookRoutes(app: FastifyInstance): Promise<void> {
  app.get(
    '/v1/webhooks',
    { schema: { tags: ['webhooks'], summary: "List the tenant's webhook endpoints" } },
    async (req) => {
      const p = await authenticate(app, req);
      requireScope(p, 'admin');
      return { endpoints: app.tenants.require(p.tenant).webhooks.map(publicEndpoint) };
    },
  );

  app.post(
    '/v1/webhooks',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Add a webhook endpoint (its signing secret is returned once)',
        body: openapi(webhookBody),
        response: { 201: openapi(createdEndpoint) },
      },
    },
    async (req, reply) => {
      const p = await authenticate(app, req);
      requireScope(p, 'admin');
      const endpoint = await addWebhookFromBody(app, p.tenant, req.body);
      await auditWebhook(app, req, p.tenant, p.actor, 'webhook.create', endpoint);
      req.log.info({ tenant: p.tenant, actor: p.actor, endpoint: endpoint.id }, 'webhook endpoint added');
      return reply.code(201).send(endpoint);
    },
  );

  app.delete(
    '/v1/webhooks/:id',
    { schema: { tags: ['webhooks'], summary: 'Remove a webhook endpoint', params: openapi(idParam) } },
    async (req, reply) => {
      const p = await authenticate(app, req);
      requireScope(p, 'admin');
      const { id } = parse(idParam, req.params);
      await app.tenants.removeWebhook(p.tenant, id);
      await auditWebhook(app, req, p.tenant, p.actor, 'webhook.delete', { id });
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/webhooks/:id/enable',
    {
      schema: {
        tags: ['webhooks'],
        summary: 'Enable an endpoint again (after it was disabled for failures)',
        params: openapi(idParam),
      },
    },
    async (req) => {
      const p = await authenticate(app, req);
      requireScope(p, 'admin');
      const { id } = parse(idParam, req.params);
      await app.tenants.setWebhookEnabled(p.tenant, id, true);
      await auditWebhook(app, req, p.tenant, p.actor, 'webhook.enable', { id });
      return publicEndpoint(app.tenants.require(p.tenant).webhooks.find((w) => w.id === id)!);
    },
  );
}
