import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { VigieError } from '../errors.js';
import { authenticate, type Principal } from './principal.js';

/** A route handler that names what it touched (`target`) for its access record. */
export type AuditedHandler = (
  req: FastifyRequest,
  reply: FastifyReply,
  p: Principal,
  target: (t: string) => void,
) => Promise<unknown>;

/**
 * Access records for the routes that read or act on personal data (recordings, a call's diagnosis): every call,
 * allowed or not, writes who, what, when, from where and the result to the plain `access_log` and to the
 * tamper-evident audit chain. `audited(app)(action, handler)` runs a handler with its record written whatever the
 * outcome.
 */
export function audited(app: FastifyInstance) {
  const audit = async (
    req: FastifyRequest,
    p: Principal | undefined,
    action: string,
    target: string,
    result: string,
  ) => {
    app.telemetry?.writer.write('access_log', {
      ts: Date.now(),
      tenant: p?.tenant ?? '',
      actor: p?.actor ?? 'anonymous',
      subject: p?.subject ?? '',
      action,
      target,
      source_ip: req.ip,
      result,
    });
    if (p) await app.compliance?.record({ tenant: p.tenant, actor: p.actor, action, target, result, sourceIp: req.ip });
  };
  return (action: string, handler: AuditedHandler) => async (req: FastifyRequest, reply: FastifyReply) => {
    let p: Principal | undefined;
    let target = '';
    let ok = false;
    try {
      p = await authenticate(app, req);
      const out = await handler(req, reply, p, (t) => (target = t));
      ok = true;
      // Durable before the answer; if it cannot be written, the caller gets that error instead.
      await audit(req, p, action, target, 'ok');
      return out;
    } catch (err) {
      if (ok) throw err;
      // The refusal is answered with its own error; a failed audit append of it is logged.
      await audit(req, p, action, target, err instanceof VigieError ? err.code : 'INTERNAL').catch((auditErr) =>
        req.log.error({ err: auditErr, action }, 'audit append failed'),
      );
      throw err;
    }
  };
}
