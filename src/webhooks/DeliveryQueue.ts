import { randomUUID } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { readJsonLines } from '../files.js';
import type { Logger } from '../logging.js';
import type { Database } from '../store/index.js';

export interface Delivery {
  id: string;
  tenant: string;
  endpointId: string;
  event: string;
  /** The exact body sent, and signed, on every attempt. */
  body: string;
  createdAt: number;
  attempts: number;
  nextAt: number;
}

/** A delivery this node holds the lease of; `token` fences its answer against a node that took it over. */
export interface ClaimedDelivery extends Delivery {
  token: string;
}

/** Lines of the journal kept before the outbox moved to PostgreSQL (DATA_DIR/webhooks/deliveries.jsonl). */
type JournalEntry =
  | { op: 'enqueue'; d: Delivery }
  | { op: 'attempt'; id: string; attempts: number; nextAt: number }
  | { op: 'done'; id: string }
  | { op: 'dead'; id: string; reason: string };

/** Wakes idle dispatchers on every node when deliveries are enqueued (polling stays the fallback). */
export const OUTBOX_CHANNEL = 'vigie_webhooks';

interface Row {
  id: string;
  tenant: string;
  endpoint_id: string;
  event: string;
  body: string;
  created_at: string | number;
  attempts: number;
  next_ms: string | number;
  claim_token: string;
}

const COLUMNS = 'id, tenant, endpoint_id, event, body, created_at, attempts, claim_token';
/** No node holds it: claimable once due. */
const UNCLAIMED = 'claimed_by = NULL, claim_token = NULL, claimed_until = NULL';
const NEXT_MS = '(extract(epoch from next_at) * 1000)::bigint AS next_ms';

const fromRow = (r: Row): ClaimedDelivery => ({
  id: r.id,
  tenant: r.tenant,
  endpointId: r.endpoint_id,
  event: r.event,
  body: r.body,
  createdAt: Number(r.created_at),
  attempts: r.attempts,
  nextAt: Number(r.next_ms),
  token: r.claim_token,
});

/** The key deliveries are ordered under: one endpoint of one tenant. */
export const endpointKey = (d: { tenant: string; endpointId: string }) => `${d.tenant}/${d.endpointId}`;

/**
 * The webhook outbox, a PostgreSQL table shared by every node (src/webhooks/schema.ts).
 * Enqueueing is an insert, durable once it resolves. A node claims the due head of
 * each endpoint under a lease (`FOR UPDATE SKIP LOCKED`, so claimers never wait on
 * each other nor take the same row), sends it, and deletes it, reschedules it, or
 * gives it up, each only while its lease still holds.
 */
export class DeliveryQueue {
  constructor(
    private readonly db: Database,
    private readonly nodeId: string,
    private readonly log: Logger,
  ) {}

  /** Pending deliveries, in flight included. */
  async size(): Promise<number> {
    const { rows } = await this.db.query<{ n: string }>('SELECT count(*) AS n FROM webhook_outbox');
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Inserts deliveries in one transaction, in the order given. An endpoint's
   * transaction-scoped advisory lock is held from taking `seq` to the commit, so
   * nodes publishing to one endpoint at once commit in `seq` order and no
   * dispatcher sends a later delivery while an earlier one is still uncommitted.
   * Ids already present are skipped (a journal import that runs again).
   */
  async enqueue(deliveries: readonly Delivery[]): Promise<void> {
    if (deliveries.length === 0) return;
    await this.db.transaction(async (tx) => {
      // Sorted, so that two transactions locking the same endpoints cannot deadlock.
      for (const key of [...new Set(deliveries.map(endpointKey))].sort())
        await tx.query("SELECT pg_advisory_xact_lock(hashtextextended('vigie:webhooks:' || $1, 0))", [key]);
      for (const d of deliveries)
        await tx.query(
          `INSERT INTO webhook_outbox (id, tenant, endpoint_id, event, body, created_at, attempts, next_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, to_timestamp($8::double precision / 1000))
           ON CONFLICT (id) DO NOTHING`,
          [d.id, d.tenant, d.endpointId, d.event, d.body, d.createdAt, d.attempts, d.nextAt],
        );
      // Sent at commit: listeners never wake before the rows are visible.
      await tx.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, String(deliveries.length)]);
    });
  }

  /**
   * Claims up to `limit` due deliveries, each the oldest pending one of its
   * endpoint (the head), skipping the endpoints in `skip` (busy here, or
   * disabled) and rows another node is claiming right now. A head whose lease
   * expired (its node died) is claimed again, with the same delivery id.
   */
  async claim(limit: number, leaseMs: number, skip: readonly string[]): Promise<ClaimedDelivery[]> {
    const { rows } = await this.db.query<Row>(
      `UPDATE webhook_outbox o
       SET claimed_by = $1, claim_token = $2, claimed_until = now() + $3 * interval '1 millisecond'
       WHERE o.seq IN (
         SELECT w.seq FROM webhook_outbox w
         WHERE w.seq IN (SELECT min(seq) FROM webhook_outbox GROUP BY tenant, endpoint_id)
           AND w.next_at <= now()
           AND (w.claimed_until IS NULL OR w.claimed_until < now())
           AND NOT (w.tenant || '/' || w.endpoint_id = ANY($4::text[]))
         ORDER BY w.seq
         LIMIT $5
         FOR UPDATE SKIP LOCKED)
       RETURNING ${COLUMNS}, ${NEXT_MS}, o.seq`,
      [this.nodeId, randomUUID(), leaseMs, skip, limit],
    );
    return (rows as Array<Row & { seq: string }>).sort((a, b) => Number(a.seq) - Number(b.seq)).map(fromRow);
  }

  /** Delivered: gone from the outbox. False when the lease was lost (another node has it). */
  async done(d: ClaimedDelivery): Promise<boolean> {
    return this.#finish(d, 'done');
  }

  /** Given up: gone from the outbox (its attempts stay in `webhook_attempts`). */
  async dead(d: ClaimedDelivery, reason: string): Promise<boolean> {
    this.log.info({ delivery: d.id, reason }, 'webhook delivery removed from the outbox');
    return this.#finish(d, 'dead');
  }

  async #finish(d: ClaimedDelivery, why: string): Promise<boolean> {
    const { rows } = await this.db.query('DELETE FROM webhook_outbox WHERE id = $1 AND claim_token = $2 RETURNING id', [
      d.id,
      d.token,
    ]);
    if (!rows.length) this.log.warn({ delivery: d.id, why }, 'webhook delivery lease lost before its outcome was kept');
    return rows.length > 0;
  }

  /**
   * One more consecutive failure of the endpoint, whichever node saw it; resolves to the count. The count is
   * shared, so an endpoint is disabled after `VIGIE_WEBHOOK_DISABLE_AFTER` failures however many nodes send to it.
   */
  async countFailure(tenant: string, endpointId: string): Promise<number> {
    const { rows } = await this.db.query<{ failures: number }>(
      `INSERT INTO webhook_endpoint_failures (tenant, endpoint_id, failures) VALUES ($1, $2, 1)
       ON CONFLICT (tenant, endpoint_id) DO UPDATE SET failures = webhook_endpoint_failures.failures + 1
       RETURNING failures`,
      [tenant, endpointId],
    );
    return rows[0]!.failures;
  }

  /** The endpoint answered (or was disabled): its count of consecutive failures starts again. */
  async clearFailures(tenant: string, endpointId: string): Promise<void> {
    await this.db.query('DELETE FROM webhook_endpoint_failures WHERE tenant = $1 AND endpoint_id = $2', [
      tenant,
      endpointId,
    ]);
  }

  /** Another attempt after `delayMs`; the lease is released and the delivery stays its endpoint's head. */
  async retryLater(d: ClaimedDelivery, delayMs: number): Promise<boolean> {
    const { rows } = await this.db.query(
      `UPDATE webhook_outbox
       SET attempts = attempts + 1, next_at = now() + $3 * interval '1 millisecond', ${UNCLAIMED}
       WHERE id = $1 AND claim_token = $2 RETURNING id`,
      [d.id, d.token, Math.round(delayMs)],
    );
    return rows.length > 0;
  }

  /**
   * Releases the leases this node id holds from an earlier run: a node that
   * starts has nothing in flight, so they need not wait to expire.
   */
  async releaseStale(): Promise<number> {
    const { rows } = await this.db.query(`UPDATE webhook_outbox SET ${UNCLAIMED} WHERE claimed_by = $1 RETURNING id`, [
      this.nodeId,
    ]);
    if (rows.length) this.log.info({ deliveries: rows.length }, 'webhook leases of the previous run released');
    return rows.length;
  }

  /** Gives the lease back without an attempt (the endpoint was disabled meanwhile). */
  async release(d: ClaimedDelivery): Promise<void> {
    await this.db.query(`UPDATE webhook_outbox SET ${UNCLAIMED} WHERE id = $1 AND claim_token = $2`, [d.id, d.token]);
  }

  /**
   * Replaces the body of each pending delivery for which `redact` returns a new
   * one (erasure), then vacuums the table so that the old row versions are gone
   * from its pages. Returns how many deliveries were changed.
   */
  async redact(redact: (d: { body: string }) => string | undefined): Promise<number> {
    const changed = await this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ id: string; body: string }>('SELECT id, body FROM webhook_outbox FOR UPDATE');
      let n = 0;
      for (const r of rows) {
        const body = redact(r);
        if (body === undefined || body === r.body) continue;
        await tx.query('UPDATE webhook_outbox SET body = $2 WHERE id = $1', [r.id, body]);
        n++;
      }
      return n;
    });
    if (changed) await this.compact();
    return changed;
  }

  /**
   * Vacuums the outbox (the retention sweep calls it), so the bodies of
   * deliveries made, given up or redacted leave the table's pages. Returns 0:
   * finished rows are deleted as they finish, nothing is left to count.
   */
  async compact(): Promise<number> {
    await this.db.exec('VACUUM webhook_outbox');
    return 0;
  }

  /**
   * Moves the deliveries pending in the journal of the previous version into
   * the outbox, keeping their ids, attempts and order, then deletes the journal:
   * its bodies name people, and a copy set aside would escape their erasure.
   * Inserting is idempotent, so a start that dies between the two steps imports
   * again without duplicates. Returns the number imported.
   */
  async importJournal(file: string): Promise<number> {
    if (!existsSync(file)) return 0;
    const pending = new Map<string, Delivery>();
    for (const e of readJsonLines<JournalEntry>(file, () =>
      this.log.error({ file }, 'webhook journal has a torn last line; ignored'),
    )) {
      if (e.op === 'enqueue') pending.set(e.d.id, { ...e.d });
      else if (e.op === 'attempt') {
        const d = pending.get(e.id);
        if (d) Object.assign(d, { attempts: e.attempts, nextAt: e.nextAt });
      } else pending.delete(e.id);
    }
    // One transaction: the import is all or nothing.
    await this.enqueue([...pending.values()]);
    rmSync(file);
    this.log.info({ file, imported: pending.size }, 'webhook journal imported into the outbox');
    return pending.size;
  }
}
