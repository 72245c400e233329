/**
 * What the webhook promise is checked against when several nodes deliver: the outbox itself (every delivery ever
 * enqueued, with its `seq`, the order of publication per endpoint), and slow receivers that note each request as it
 * arrives and when it is answered. The promise (docs/integrators.md, "Delivery"): each endpoint gets its deliveries
 * one at a time, in publication order, whichever node sends them; a delivery keeps its id across nodes, and is sent
 * again (same id) only when the node sending it died before recording the answer.
 */
import assert from 'node:assert/strict';
import type { Database } from '../../src/store/index.js';
import { portsOf } from './cluster.js';
import { startWebhookReceiver } from './webhookReceiver.js';

export interface Enqueued {
  seq: number;
  id: string;
  endpoint_id: string;
  event: string;
  body: string;
}

/**
 * Copies each row inserted into `webhook_outbox` (rows are deleted once delivered) into `test_outbox_log`, by a
 * trigger in the database every node writes to; returns a reader of that log. Call it once the nodes have created
 * the outbox table and before any event.
 */
export async function logOutbox(db: Database): Promise<() => Promise<Enqueued[]>> {
  await db.exec(`
CREATE TABLE test_outbox_log (seq bigint PRIMARY KEY, id text NOT NULL, endpoint_id text NOT NULL,
                              event text NOT NULL, body text NOT NULL);
CREATE FUNCTION test_outbox_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO test_outbox_log VALUES (NEW.seq, NEW.id, NEW.endpoint_id, NEW.event, NEW.body);
  RETURN NEW;
END $$;
CREATE TRIGGER test_outbox_log AFTER INSERT ON webhook_outbox FOR EACH ROW EXECUTE FUNCTION test_outbox_log();
`);
  return async () =>
    (await db.query<Enqueued>('SELECT * FROM test_outbox_log ORDER BY seq')).rows.map((r) => ({
      ...r,
      seq: Number(r.seq),
    }));
}

/**
 * What a killed node leaves to be sent again: the requests the test caught it sending (held until the kill; on a slow
 * machine the node may have timed one out and sent it again before), and the deliveries it still holds claimed in the
 * outbox. Its lease keeps those from every other node until it expires, so this read, made after the kill, is the
 * whole set, whatever moment the kill caught each in: claimed and not sent yet, sent and unanswered, or answered before
 * the node could record it (the last two arrive twice; the first, once).
 */
export async function leftToResend(
  db: Database,
  nodeId: string,
  caught: ReadonlyArray<{ id: string }>,
): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM webhook_outbox WHERE claimed_by = $1', [nodeId]);
  return new Set([...caught.map((c) => c.id), ...rows.map((r) => r.id)]);
}

export interface Arrival {
  id: string;
  endpoint: string;
  /** The sender's port: which node sent it (cluster.ts `portsOf`). */
  remotePort: number;
  /** Order of arrival at this receiver (an index, not a time). */
  n: number;
  /** Set when the receiver answers (after `delayMs`, and not while `hold` is true). */
  answered?: number;
  /** Keeps the request unanswered (its sender about to be killed) until `release()`. */
  hold?: boolean;
}

/**
 * One receiver per endpoint id, each holding every request `delayMs` before answering 200, so that deliveries are
 * in flight when a node dies. `inFlight()` lists the requests not answered yet; marking one `hold` (synchronously,
 * in the tick that found it in flight) keeps it so until `release()`.
 */
export async function slowReceivers(endpoints: string[], secret: string, delayMs: number) {
  const arrivals: Arrival[] = [];
  let clock = 0;
  const receivers = await Promise.all(
    endpoints.map(async (endpoint) => {
      const r = await startWebhookReceiver(() => secret);
      r.setResponder(async (id, _count, remotePort) => {
        const a: Arrival = { id, endpoint, remotePort, n: ++clock };
        arrivals.push(a);
        do await new Promise((resolve) => setTimeout(resolve, delayMs));
        while (a.hold);
        a.answered = ++clock;
        return 200;
      });
      return { endpoint, ...r };
    }),
  );
  return {
    receivers,
    arrivals,
    inFlight: () => arrivals.filter((a) => a.answered === undefined),
    /**
     * Holds the requests process `pid` is sending now (found by their connections, `portsOf`), in this very tick:
     * killed next, it dies before it can record an answer. Returns them.
     */
    holdFrom: (pid: number) => {
      const ports = new Set(receivers.flatMap((r) => [...portsOf(pid, Number(new URL(r.url).port))]));
      const held = arrivals.filter((a) => a.answered === undefined && ports.has(a.remotePort));
      for (const a of held) a.hold = true;
      return held;
    },
    release: () => {
      for (const a of arrivals) a.hold = false;
    },
    close: () => Promise.all(receivers.map((r) => r.close())),
  };
}

/**
 * Exactly once by delivery id, in order per endpoint: at each endpoint, the deliveries as they arrived, a repeat of
 * the one just before it set aside, are exactly what was enqueued for it, in `seq` order; only the deliveries in
 * `orphans` (in flight at a node when it was killed) arrive twice, and their second arrival follows the first at
 * once (the head of the queue is resent before anything behind it); and no endpoint ever has two requests in flight
 * (the orphan's own request, whose node is dead, aside).
 */
export function assertExactlyOnceInOrder(enqueued: Enqueued[], arrivals: Arrival[], orphans: ReadonlySet<string>) {
  for (const endpoint of new Set(enqueued.map((e) => e.endpoint_id))) {
    const expected = enqueued.filter((e) => e.endpoint_id === endpoint).map((e) => e.id);
    const got = arrivals.filter((a) => a.endpoint === endpoint).sort((a, b) => a.n - b.n);
    const collapsed = got.filter((a, i) => i === 0 || got[i - 1]!.id !== a.id).map((a) => a.id);
    assert.deepEqual(collapsed, expected, `${endpoint}: each enqueued delivery once, in publication (seq) order`);
    const repeated = got.filter((a, i) => got.findIndex((b) => b.id === a.id) !== i).map((a) => a.id);
    assert.deepEqual(
      repeated.filter((id) => !orphans.has(id)),
      [],
      `${endpoint}: only a delivery the killed node left claimed is sent twice`,
    );
    const live = got.filter((a, i) => !(orphans.has(a.id) && got.findIndex((b) => b.id === a.id) === i));
    for (const [i, a] of live.entries())
      if (i > 0) assert.ok(a.n > live[i - 1]!.answered!, `${endpoint}: ${a.id} was sent while another was in flight`);
  }
}
