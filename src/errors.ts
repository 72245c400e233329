import type { z } from 'zod';

/**
 * Stable error codes shared by signaling and the REST API. Clients switch on
 * `code`; `message` is for humans and may change.
 */
export const ERROR_CODES = [
  'INVALID_REQUEST',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'NOT_FOUND',
  'RATE_LIMITED',
  'INTERNAL',
  'UNAVAILABLE',
  'REDIRECT',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  /**
   * Not now: the server is draining, or a dependency the action needs (the audit log's head) is not ready. Retry,
   * elsewhere or shortly.
   */
  UNAVAILABLE: 503,
  /**
   * Not here: the room is served by another node, which `redirect` names ({ nodeId, url }). Clients go there with
   * the same request (the SDK does it by itself). 421 is HTTP's "Misdirected Request".
   */
  REDIRECT: 421,
};

/** Where a REDIRECT sends the client: the node that serves the room, and its signaling WebSocket URL. */
export interface RedirectTarget {
  nodeId: string;
  url: string;
}

export class VigieError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** With REDIRECT: where to go instead. */
    readonly redirect?: RedirectTarget,
  ) {
    super(message);
    this.name = 'VigieError';
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  toJSON(): { code: ErrorCode; message: string; redirect?: RedirectTarget } {
    return { code: this.code, message: this.message, ...(this.redirect ? { redirect: this.redirect } : {}) };
  }
}

/** Parses `value` with a zod schema, or throws INVALID_REQUEST naming every bad field. */
export function parseOrInvalid<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value ?? {});
  if (!r.success)
    throw new VigieError(
      'INVALID_REQUEST',
      r.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
    );
  return r.data;
}

/** What Node's sockets (and undici) throw when a server cannot be reached or drops the connection. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'ENETDOWN',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

/**
 * Whether `err` says a component the action needed (ClickHouse, the object store) was unreachable or timed out,
 * rather than that our code is wrong: a retryable outage, answered 503 UNAVAILABLE and logged as a warning, not an
 * INTERNAL error. Only network failures count; a query the server refuses is still our bug.
 */
export function isComponentOutage(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown[] } | undefined;
  if (!e || typeof e !== 'object') return false;
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  // @clickhouse/client's request_timeout, which carries no code.
  if (e.message === 'Timeout error.') return true;
  return Array.isArray(e.errors) && e.errors.length > 0 && e.errors.every(isComponentOutage);
}

/** Anything thrown that is not a VigieError is an internal error; its details stay in the log. */
export function toVigieError(err: unknown): VigieError {
  return err instanceof VigieError ? err : new VigieError('INTERNAL', 'internal error');
}
