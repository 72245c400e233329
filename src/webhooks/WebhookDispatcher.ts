import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Config, WebhookEndpointConfig } from '../config/index.js';
import type { Logger } from '../logging.js';
import type { TenantRegistry } from '../tenants/index.js';
import type { Database } from '../store/index.js';
import {
  type ClaimedDelivery,
  type Delivery,
  type DeliveryQueue,
  endpointKey,
  OUTBOX_CHANNEL,
} from './DeliveryQueue.js';
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
  'quality.issue',
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

/** What the dispatcher reads of the tenants: their endpoints, and disabling one. */
export type WebhookTenants = Pick<TenantRegistry, 'get' | 'list' | 'setWebhookEnabled'>;

/** Endpoints one node sends to at once (each endpoint is sent to one delivery at a time). */
const MAX_IN_FLIGHT = 32;
/**
 * While notifications wake a node for every new delivery, its look at the outbox for the rest (a retry another node
 * scheduled, a dead node's expired lease, an endpoint enabled again) backs off, doubling from `pollMs` up to this many
 * times `pollMs` while it finds nothing: an idle node's polling was most of its load on PostgreSQL.
 */
const IDLE_POLL_FACTOR = 8;

/**
 * Delivers events to each tenant's endpoints, from the outbox every node
 * shares. Per endpoint, deliveries go out one at a time in the order they were
 * enqueued (a failing one holds the ones behind it), whichever node sends
 * them, so a receiver sees events in order. Failed attempts are retried with
 * exponential backoff and jitter; each delivery keeps its id across attempts
 * and nodes, so receivers drop duplicates by id (a node that dies after
 * sending and before recording the answer leaves one resend).
 */
export class WebhookDispatcher {
  /** Endpoints (tenant/endpoint) this node is sending to now. */
  readonly #busy = new Set<string>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Publishes go to the outbox one after the other: a node's events keep their order per endpoint. */
  #tail: Promise<unknown> = Promise.resolve();
  #timer?: NodeJS.Timeout;
  /** When the timer fires (epoch ms). */
  #timerAt = 0;
  /** The wait before the next look at the outbox; see IDLE_POLL_FACTOR. */
  #pollMs: number;
  #unlisten?: () => Promise<void>;
  #started = false;
  #pumping = false;
  #again = false;
  #closed = false;

  constructor(
    readonly queue: DeliveryQueue,
    private readonly tenants: WebhookTenants,
    private readonly options: Config['webhooks'],
    private readonly attempts: AttemptSink | undefined,
    private readonly log: Logger,
  ) {
    this.#pollMs = options.pollMs;
  }

  /** Starts polling the outbox, and waking on `vigie_webhooks` notifications when `db` is given. */
  async start(db?: Pick<Database, 'listen'>): Promise<void> {
    this.#started = true;
    if (db)
      this.#unlisten = await db.listen(
        OUTBOX_CHANNEL,
        () => this.#pump(),
        () => this.#pump(),
      );
    this.#pump();
  }

  /** Looks at the outbox again within `ms`; an earlier look already due stands. */
  #wakeWithin(ms: number): void {
    const at = Date.now() + ms;
    if (this.#closed || (this.#timer && this.#timerAt <= at)) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pump();
    }, ms);
    this.#timer.unref();
  }

  /** Stops claiming, and waits for the attempts in flight to be recorded. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await unlisten?.().catch(() => undefined);
    await this.#tail;
    while (this.#pumping || this.#inFlight.size > 0) {
      await Promise.all(this.#inFlight);
      if (this.#pumping) await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Deliveries pending in the outbox (every node's), in flight included. */
  pendingCount(): Promise<number> {
    return this.queue.size();
  }

  /**
   * Queues `event` for every enabled endpoint of the tenant whose filter
   * matches; resolves with their number once they are in the outbox. A store
   * that refuses the insert is logged, and the promise resolves to 0.
   */
  publish(tenant: string, event: WebhookEvent, data: Record<string, unknown>): Promise<number> {
    const t = this.tenants.get(tenant);
    const deliveries: Delivery[] = [];
    for (const ep of t?.webhooks ?? []) {
      if (!ep.enabled || !(ep.events.includes('*') || ep.events.includes(event))) continue;
      const id = `dlv_${randomUUID()}`;
      const createdAt = Date.now();
      const body = JSON.stringify({ id, event, tenant, createdAt: new Date(createdAt).toISOString(), data });
      deliveries.push({ id, tenant, endpointId: ep.id, event, body, createdAt, attempts: 0, nextAt: createdAt });
    }
    if (deliveries.length === 0) return Promise.resolve(0);
    const queued = this.#tail.then(() => this.queue.enqueue(deliveries));
    this.#tail = queued.catch(() => undefined);
    return queued.then(
      () => {
        this.#pump();
        return deliveries.length;
      },
      (err) => {
        this.log.error({ err, tenant, event, deliveries: deliveries.length }, 'webhook event not queued: store failed');
        return 0;
      },
    );
  }

  /** Claims what is due and starts sending it; runs again if woken meanwhile. */
  #pump(): void {
    if (this.#closed || !this.#started) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    void this.#claimAndSend()
      .then((busy) => {
        // Without notifications, polling is how new deliveries are found: it does not back off.
        const idle = this.#unlisten && !busy;
        this.#pollMs = idle ? Math.min(this.#pollMs * 2, this.options.pollMs * IDLE_POLL_FACTOR) : this.options.pollMs;
      })
      .catch((err) => this.log.error({ err }, 'webhook outbox could not be read'))
      .finally(() => {
        this.#pumping = false;
        this.#wakeWithin(this.#pollMs);
        if (this.#again && !this.#closed) {
          this.#again = false;
          this.#pump();
        }
      });
  }

  /** Whether there was work: deliveries claimed, or none could be for want of room. */
  async #claimAndSend(): Promise<boolean> {
    const free = MAX_IN_FLIGHT - this.#busy.size;
    if (free <= 0) return true;
    // Disabled endpoints keep their deliveries until they are enabled again.
    const skip = [...this.#busy];
    for (const t of this.tenants.list())
      for (const ep of t.webhooks) if (!ep.enabled) skip.push(endpointKey({ tenant: t.id, endpointId: ep.id }));
    const claimed = await this.queue.claim(free, this.options.leaseMs, skip);
    for (const d of claimed) {
      // Closed during the claim: the lease goes back now rather than when it expires.
      if (this.#closed) {
        await this.queue.release(d);
        continue;
      }
      const key = endpointKey(d);
      this.#busy.add(key);
      const run = this.#deliver(d)
        .catch((err) => this.log.error({ err, delivery: d.id }, 'webhook delivery outcome not kept'))
        .finally(() => {
          this.#busy.delete(key);
          this.#inFlight.delete(run);
          this.#pump();
        });
      this.#inFlight.add(run);
    }
    return claimed.length > 0;
  }

  async #deliver(d: ClaimedDelivery): Promise<void> {
    const ep = this.tenants.get(d.tenant)?.webhooks.find((w) => w.id === d.endpointId);
    if (!ep) {
      await this.queue.dead(d, 'endpoint removed');
      return;
    }
    if (!ep.enabled) return this.queue.release(d); // disabled since the claim: kept for when it is enabled again
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
    if (result.ok) {
      await this.queue.done(d);
      await this.queue.clearFailures(d.tenant, ep.id);
      return;
    }
    const failures = await this.queue.countFailure(d.tenant, ep.id);
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
      await this.queue.dead(d, result.permanent ? result.error : `gave up after ${attempt} attempts`);
      this.log.error(
        { tenant: d.tenant, endpoint: ep.id, delivery: d.id, attempts: attempt },
        'webhook delivery given up',
      );
    } else {
      // Exponential backoff with "equal jitter": half fixed, half random.
      const ceiling = Math.min(3_600_000, this.options.backoffBaseMs * 2 ** (attempt - 1));
      const delayMs = ceiling / 2 + Math.random() * (ceiling / 2);
      await this.queue.retryLater(d, delayMs);
      this.#wakeWithin(delayMs);
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
    await this.queue.clearFailures(tenant, ep.id);
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
    void this.publish(tenant, 'webhook.endpoint_disabled', {
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
