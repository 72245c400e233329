import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomicSync } from '../files.js';
import { policyFor, PolicyError, type RetentionPolicy } from './policy.js';

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

/**
 * The guard file (DATA_DIR/retention-applied.json). Missing: undefined (the
 * caller decides whether that can be a first start). Unreadable or invalid:
 * a PolicyError, never an empty guard that would let any lock be shortened.
 */
export function readGuard(file: string, tenants: Tenant[]): Map<string, PromisedLock> | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PolicyError(`cannot read the retention guard ${file}: ${(err as Error).message}`);
  }
  let parsed: z.infer<typeof guardSchema>;
  try {
    const json = JSON.parse(text) as unknown;
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
    parsed = guardSchema.parse(json);
  } catch (err) {
    throw new PolicyError(
      `the retention guard ${file} is corrupt (${(err as Error).message.slice(0, 300)}); restore it from a ` +
        `backup: it records the COMPLIANCE locks promised to each tenant`,
    );
  }
  return new Map(Object.entries(parsed.locks));
}

export function writeGuard(file: string, locks: Map<string, PromisedLock>): void {
  writeFileAtomicSync(file, JSON.stringify({ version: 2, locks: Object.fromEntries(locks) }, null, 2));
}
