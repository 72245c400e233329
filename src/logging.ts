import type { FastifyServerOptions } from 'fastify';
import type { Config } from './config/index.js';
import { traceMixin } from './telemetry/otel.js';

/** Query parameters that carry credentials; their values never reach a log line. */
const SECRET_QUERY = /([?&](?:token|access_token|api_key)=)[^&#]*/gi;

export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[redacted]');
}

export function loggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    mixin: traceMixin,
    redact: {
      paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'req.headers.cookie', 'token', '*.token', 'secret', '*.secret'],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; id?: string }) => ({ method: req.method, url: redactUrl(req.url), remoteAddress: req.ip }),
    },
  };
}
export type { FastifyBaseLogger as Logger } from 'fastify';
