import type { FastifyServerOptions } from 'fastify';
import pinoPretty from 'pino-pretty';
import type { Config } from './config/index.js';
import { traceMixin } from './telemetry/otel.js';

/** Query parameters that carry credentials; their values never reach a log line. */
const SECRET_QUERY = /([?&](?:token|access_token|api_key)=)[^&#]*/gi;

export function redactUrl(url: string): string {
  return url.replace(SECRET_QUERY, '$1[redacted]');
}

/**
 * `auto`: a person at a terminal reads one coloured line per event; a pipe or a file (a container's log
 * driver, a collector) gets one JSON object per line, which is what log pipelines parse.
 */
export function prettyLogs(format: Config['logFormat'], stdoutIsTty = Boolean(process.stdout.isTTY)): boolean {
  return format === 'pretty' || (format === 'auto' && stdoutIsTty);
}

/**
 * pino options for the gateway. `stream` (tests read the log from one) always gets JSON. Pretty lines are
 * formatted by pino-pretty after redaction, so they hide the same secrets as the JSON ones.
 */
export function loggerOptions(config: Config, stream?: NodeJS.WritableStream): FastifyServerOptions['logger'] {
  const options = {
    level: config.logLevel,
    mixin: traceMixin,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'req.headers.cookie',
        'token',
        '*.token',
        'secret',
        '*.secret',
      ],
      censor: '[redacted]',
    },
    serializers: {
      req: (req: { method: string; url: string; ip?: string; id?: string }) => ({
        method: req.method,
        url: redactUrl(req.url),
        remoteAddress: req.ip,
      }),
    },
  };
  if (stream) return { ...options, stream };
  if (!prettyLogs(config.logFormat)) return options;
  // Colours only when stdout is a terminal (pino-pretty's default), so VIGIE_LOG_FORMAT=pretty into a file stays plain
  // text.
  return { ...options, stream: pinoPretty({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }) };
}
export type { FastifyBaseLogger as Logger } from 'fastify';
