import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { tracer } from './otel.js';

declare module 'fastify' {
  interface FastifyRequest {
    span?: Span;
  }
}

/** Adds the tenant and room a REST call concerns to its span, once the handler knows them. */
export function annotateRequest(req: FastifyRequest, attrs: { tenant?: string; room?: string }): void {
  if (attrs.tenant) req.span?.setAttribute('vigie.tenant', attrs.tenant);
  if (attrs.room) req.span?.setAttribute('vigie.room', attrs.room);
}

/**
 * One span per REST call, active while the request is handled so that log
 * lines carry its trace id. Only the route pattern is recorded, never the URL:
 * query strings can carry tokens.
 */
export default fp(
  async (app: FastifyInstance) => {
    app.addHook('onRequest', (req, _reply, done) => {
      const route = req.routeOptions.url ?? 'unmatched';
      const span = tracer().startSpan(`${req.method} ${route}`, {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method, 'http.route': route },
      });
      req.span = span;
      context.with(trace.setSpan(context.active(), span), done);
    });
    app.addHook('onResponse', async (req, reply) => {
      req.span?.setAttribute('http.response.status_code', reply.statusCode);
      if (reply.statusCode >= 500) req.span?.setStatus({ code: SpanStatusCode.ERROR });
      req.span?.end();
    });
  },
  { name: 'vigie-http-tracing' },
);
