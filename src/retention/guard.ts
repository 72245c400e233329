import { z } from 'zod';
import type { Database, Queryable, StoreMigration } from '../store/index.js';
import { policyFor, PolicyError, type RetentionPolicy } from './policy.js';

/**
 * Owner `retention`: the COMPLIANCE lock promised to each tenant's recordings,
 * shared by every node (a node added later must keep the promises the others
 * made). A promise only grows.
 */
export const RETENTION_MIGRATIONS: StoreMigration[] = [
  {
    version: 1,
    name: 'retention_promises',
    sql: `CREATE TABLE retention_promises (
  tenant text PRIMARY KEY,
  policy text NOT NULL,
  duration bigint NOT NULL CHECK (duration > 0),
  updated_at timestamptz NOT NULL DEFAULT now());
`,
  },
];

/** The COMPLIANCE lock promised to one tenant's recordings. */
export interface PromisedLock {
  policy: string;
  duration: number;
}

const guardSchema = z.object({
  version: z.literal(2),
  /** Tenant → the COMPLIANCE lock its recordings were promised (the longest ever applied). */
  locks: z.record(z.string(), z.object({ policy: z.string(), duration: z.number().int().positive() })),
});

type Tenant = { id: string; retentionPolicy?: string };

/**
 * The effective recordings rule of each tenant under a policy set, compared
 * with what was promised: a tenant moved to another policy (renamed, or
 * weaker) is held to the same COMPLIANCE lock as before. Returns the problems
 * (empty: acceptable) and the promises to keep from now on. A tenant that is no
 * longer configured keeps its promise, so re-creating it restores the guard.
 */
export function complianceShortenings(
  promised: Map<string, PromisedLock>,
  next: Map<string, RetentionPolicy>,
  tenants: Tenant[],
): { problems: string[]; locks: Map<string, PromisedLock> } {
  const problems: string[] = [];
  const locks = new Map(promised);
  for (const t of tenants) {
    let policy: RetentionPolicy;
    try {
      policy = policyFor(next, t.id, t.retentionPolicy);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    const rule = policy.categories.recordings;
    const before = promised.get(t.id);
    if (before && rule.lockMode !== 'compliance')
      problems.push(
        `tenant "${t.id}": its recordings were promised a COMPLIANCE lock of ${before.duration}s (policy ` +
          `"${before.policy}"); policy "${policy.name}" locks them in ${rule.lockMode} mode`,
      );
    else if (before && rule.duration < before.duration)
      problems.push(
        `tenant "${t.id}": its recordings COMPLIANCE lock cannot shrink from ${before.duration}s (policy ` +
          `"${before.policy}") to ${rule.duration}s (policy "${policy.name}")`,
      );
    else if (rule.lockMode === 'compliance')
      locks.set(t.id, { policy: policy.name, duration: Math.max(rule.duration, before?.duration ?? 0) });
  }
  return { problems, locks };
}

/** The promises every node keeps (table `retention_promises`). */
export async function readPromises(db: Queryable): Promise<Map<string, PromisedLock>> {
  const { rows } = await db.query<{ tenant: string; policy: string; duration: string | number }>(
    'SELECT tenant, policy, duration FROM retention_promises',
  );
  return new Map(rows.map((r) => [r.tenant, { policy: r.policy, duration: Number(r.duration) }]));
}

/** Records `locks`; a promise already longer (made by another node meanwhile) is kept. */
export async function keepPromises(db: Database, locks: Map<string, PromisedLock>): Promise<void> {
  await db.transaction(async (tx) => {
    for (const [tenant, lock] of locks)
      await tx.query(
        `INSERT INTO retention_promises (tenant, policy, duration) VALUES ($1, $2, $3)
         ON CONFLICT (tenant) DO UPDATE SET
           policy = CASE WHEN EXCLUDED.duration >= retention_promises.duration
                         THEN EXCLUDED.policy ELSE retention_promises.policy END,
           duration = GREATEST(retention_promises.duration, EXCLUDED.duration), updated_at = now()`,
        [tenant, lock.policy, lock.duration],
      );
  });
}

/**
 * The promises of a guard file of the version before the store
 * (DATA_DIR/retention-applied.json), imported once. Invalid: a PolicyError,
 * never an empty guard that would let any lock be shortened.
 */
export function parseGuardFile(file: string, json: unknown, tenants: Tenant[]): Map<string, PromisedLock> {
  try {
    // Version 1 kept the applied policies by name: its promises are those policies' effective rules for today's
    // tenants.
    if (Array.isArray(json))
      return complianceShortenings(
        new Map(),
        new Map((json as RetentionPolicy[]).map((p) => [p.name, p])),
        tenants.filter((t) =>
          (json as RetentionPolicy[]).some(
            (p) => p.name === (t.retentionPolicy ?? 'default') || p.tenants.includes(t.id),
          ),
        ),
      ).locks;
    return new Map(Object.entries(guardSchema.parse(json).locks));
  } catch (err) {
    throw new PolicyError(
      `the retention guard ${file} is corrupt (${(err as Error).message.slice(0, 300)}); restore it from a ` +
        `backup: it records the COMPLIANCE locks promised to each tenant`,
    );
  }
}
