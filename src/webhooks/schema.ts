import type { StoreMigration } from '../store/index.js';

/**
 * The webhook outbox (owner `webhooks`). A row is a delivery still to be made:
 * it is inserted when the event is published and deleted once delivered or
 * given up, so the table holds only what is pending or in flight.
 * - `seq` is the order of enqueue; per endpoint, only the lowest pending `seq`
 *   (the head) can be claimed, which keeps each endpoint's deliveries in order.
 * - `claimed_by`/`claim_token`/`claimed_until` are the lease of the node
 *   sending it; a lease that expires (its node died) makes the row claimable
 *   again, and the token fences the late answer of a node that lost it.
 */
export const STORE_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'webhook_outbox',
    sql: `
CREATE TABLE webhook_outbox (
  seq bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  tenant text NOT NULL,
  endpoint_id text NOT NULL,
  event text NOT NULL,
  body text NOT NULL,
  created_at bigint NOT NULL,
  attempts integer NOT NULL DEFAULT 0,
  next_at timestamptz NOT NULL DEFAULT now(),
  claimed_by text,
  claim_token uuid,
  claimed_until timestamptz
);
CREATE INDEX webhook_outbox_endpoint ON webhook_outbox (tenant, endpoint_id, seq);
`,
  },
  {
    version: 2,
    name: 'webhook_endpoint_failures: consecutive failures per endpoint, counted by every node together',
    sql: `
CREATE TABLE IF NOT EXISTS webhook_endpoint_failures (
  tenant text NOT NULL,
  endpoint_id text NOT NULL,
  failures integer NOT NULL,
  PRIMARY KEY (tenant, endpoint_id)
);
`,
  },
];
