import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Config, WebhookEndpointConfig } from '../config/index.js';
import type { Logger } from '../logging.js';
import type { TenantRegistry } from '../tenants/index.js';
import type { Delivery, DeliveryQueue } from './DeliveryQueue.js';
import { signatureHeader } from './signing.js';
import { guardedLookup, HTTP_REFUSED, isPrivateAddress } from './ssrf.js';

export const WEBHOOK_EVENTS = [
  'room.started',
  'room.ended',
  'participant.joined',
  'participant.left',
  'track.published',
  'track.unpublished',
  'recording.started',
  'recording.ready',
  'recording.failed',
  'recording.deleted',
  'retention.deleted',
  'quality.alert',
  'webhook.endpoint_disabled',
] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Where attempts are recorded (the telemetry writer, into `webhook_attempts`). */
export interface AttemptSink {
  write(table: string, row: unknown): void;
}

interface AttemptResult {
  ok: boolean;
  status: number;
  error: string;
  /** A refusal that no retry can fix (SSRF guard). */
  permanent: boolean;
}

/**
 * Delivers events to each tenant's endpoints. Per endpoint, deliveries go out
 * one at a time in the order they were published (a failing one holds the
 * ones behind it), so a receiver sees events in order. Failed attempts are
 * retried with exponential backoff and jitter; the queue is durable; each
 * delivery keeps its id across attempts so receivers can drop duplicates.
 */
export class WebhookDispatcher {
  readonly #busy = new Set<string>();
  readonly #failures = new Map<string, number>();
  #timer?: NodeJS.Timeout;
  #closed = false;

  constructor(
    readonly queue: DeliveryQueue,
    private readonly tenants: TenantRegistry,
    private readonly options: Config['webhooks'],
    private readonly attempts: AttemptSink | undefined,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.#timer = setInterval(() => this.#pump(), 250);
    this.#timer.unref();
    this.#pump();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    while (this.#busy.size > 0) await new Promise((r) => setTimeout(r, 20));
  }

  get pendingCount(): number {
    return this.queue.size;
  }

  /** Queues `event` for every enabled endpoint of the tenant whose filter matches. */
  publish(tenant: string, event: WebhookEvent, data: Record<string, unknown>): number {
    const t = this.tenants.get(tenant);
    if (!t) return 0;
    let queued = 0;
    for (const ep of t.webhooks) {
      if (!ep.enabled || !(ep.events.includes('*') || ep.events.includes(event))) continue;
      const id = `dlv_${randomUUID()}`;
      const createdAt = Date.now();
      const body = JSON.stringify({ id, event, tenant, createdAt: new Date(createdAt).toISOString(), data });
      this.queue.enqueue({ id, tenant, endpointId: ep.id, event, body, createdAt, attempts: 0, nextAt: createdAt });
      queued++;
    }
    if (queued) setImmediate(() => this.#pump());
    return queued;
  }

  #pump(): void {
    if (this.#closed) return;
    const now = Date.now();
    const heads = new Map<string, Delivery>();
    for (const d of this.queue.pending()) {
      const key = `${d.tenant}/${d.endpointId}`;
      if (!heads.has(key)) heads.set(key, d);
    }
    for (const [key, d] of heads) {
      if (this.#busy.has(key) || d.nextAt > now) continue;
      const ep = this.tenants.get(d.tenant)?.webhooks.find((w) => w.id === d.endpointId);
      if (!ep) {
        this.queue.dead(d, 'endpoint removed');
        continue;
      }
      if (!ep.enabled) continue; // kept until the endpoint is enabled again
      this.#busy.add(key);
      void this.#deliver(d, ep).finally(() => {
        this.#busy.delete(key);
        setImmediate(() => this.#pump());
      });
    }
  }

  async #deliver(d: Delivery, ep: WebhookEndpointConfig): Promise<void> {
    const started = Date.now();
    const result = await this.#attempt(d, ep);
    const attempt = d.attempts + 1;
    this.attempts?.write('webhook_attempts', {
      ts: started,
      tenant: d.tenant,
      endpoint_id: ep.id,
      delivery_id: d.id,
      event: d.event,
      attempt,
      status_code: result.status,
      outcome: result.ok ? 'delivered' : result.permanent ? 'refused' : 'failed',
      error: result.error.slice(0, 300),
      duration_ms: Date.now() - started,
    });
    const key = `${d.tenant}/${ep.id}`;
    if (result.ok) {
      this.#failures.delete(key);
      this.queue.done(d);
      return;
    }
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    this.log.warn(
      {
        tenant: d.tenant,
        endpoint: ep.id,
        delivery: d.id,
        attempt,
        status: result.status,
        reason: result.error.slice(0, 200),
      },
      'webhook delivery attempt failed',
    );
    if (result.permanent || attempt >= this.options.maxAttempts) {
      this.queue.dead(d, result.permanent ? result.error : `gave up after ${attempt} attempts`);
      this.log.error(
        { tenant: d.tenant, endpoint: ep.id, delivery: d.id, attempts: attempt },
        'webhook delivery given up',
      );
    } else {
      // Exponential backoff with "equal jitter": half fixed, half random.
      const ceiling = Math.min(3_600_000, this.options.backoffBaseMs * 2 ** (attempt - 1));
      this.queue.retryLater(d, Date.now() + ceiling / 2 + Math.random() * (ceiling / 2));
    }
    if (failures >= this.options.disableAfterFailures) await this.#disable(d.tenant, ep, failures);
  }

  async #disable(tenant: string, ep: WebhookEndpointConfig, failures: number): Promise<void> {
    try {
      // In the store, so every node stops delivering to it.
      await this.tenants.setWebhookEnabled(tenant, ep.id, false);
    } catch (err) {
      // Removed meanwhile (NOT_FOUND), or the store is unreachable: nothing disabled now, its failures go on
      // counting and the next one tries again.
      this.log.warn({ err, tenant, endpoint: ep.id }, 'webhook endpoint not disabled');
      return;
    }
    this.#failures.delete(`${tenant}/${ep.id}`);
    this.log.error({ tenant, endpoint: ep.id, failures }, 'webhook endpoint disabled after repeated failures');
    this.attempts?.write('webhook_attempts', {
      ts: Date.now(),
      tenant,
      endpoint_id: ep.id,
      delivery_id: '',
      event: 'webhook.endpoint_disabled',
      attempt: 0,
      status_code: 0,
      outcome: 'endpoint-disabled',
      error: `${failures} consecutive failures`,
      duration_ms: 0,
    });
    // The host only: a URL's path or query often carries the receiver's own secret token.
    this.publish(tenant, 'webhook.endpoint_disabled', {
      endpointId: ep.id,
      host: new URL(ep.url).host,
      consecutiveFailures: failures,
    });
  }

  #attempt(d: Delivery, ep: WebhookEndpointConfig): Promise<AttemptResult> {
    const url = new URL(ep.url);
    // Endpoints from every source (config, tenants file, API) meet this check, not only the API's.
    if (url.protocol !== 'https:' && !this.options.allowHttp)
      return Promise.resolve({ ok: false, status: 0, error: `refused: ${HTTP_REFUSED}`, permanent: true });
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (!this.options.allowPrivateTargets && net.isIP(host) && isPrivateAddress(host)) {
      return Promise.resolve({ ok: false, status: 0, error: `refused: ${host} is a private address`, permanent: true });
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(d.body),
      'user-agent': 'Vigie-Webhooks/1',
      'vigie-delivery-id': d.id,
      'vigie-event': d.event,
      'vigie-timestamp': String(timestamp),
      'vigie-signature': signatureHeader(ep.secret, d.body, timestamp),
    };
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve) => {
      const req = lib.request(
        url,
        {
          method: 'POST',
          headers,
          timeout: this.options.timeoutMs,
          lookup: guardedLookup(this.options.allowPrivateTargets) as never,
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            resolve({
              ok: status >= 200 && status < 300,
              status,
              error: status >= 300 ? `HTTP ${status}` : '',
              permanent: false,
            });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`timed out after ${this.options.timeoutMs} ms`)));
      req.on('error', (err: Error & { code?: string }) =>
        resolve({ ok: false, status: 0, error: err.message, permanent: err.code === 'ESSRF' }),
      );
      req.end(d.body);
    });
  }
}
