import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * Every kind of personal data the gateway keeps, each with its own rule in
 * every policy. src/retention/inventory.ts maps each ClickHouse table and each
 * file under DATA_DIR to one of these (a test fails when one is missing).
 */
export const DATA_CATEGORIES = [
  'recordings',
  'participants',
  'track_stats',
  'transport_stats',
  'client_stats',
  'call_events',
  'call_quality',
  'access_log',
  'webhook_attempts',
  'audit_log',
  'dsar_exports',
] as const;
export type DataCategory = (typeof DATA_CATEGORIES)[number];

/**
 * Categories whose data can be anonymised in place: the identity columns are
 * not part of the table's key. The others can only be deleted: `participants`
 * and `call_quality` are keyed on the pseudonym, and an audit entry cannot be
 * altered without breaking its hash chain.
 */
export const ANONYMIZABLE: ReadonlySet<DataCategory> = new Set([
  'track_stats',
  'transport_stats',
  'client_stats',
  'call_events',
  'access_log',
]);

/** `30d`, `12h`, `6w`, `1y` (365 days): short and unambiguous in a YAML file a DPO reads. */
const duration = z
  .string()
  .regex(/^\d{1,5}[smhdwy]$/, 'a number and a unit: s, m, h, d, w or y (e.g. 30d)')
  .transform(
    (v) => Number(v.slice(0, -1)) * { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31_536_000 }[v.at(-1) as 's'],
  );

const categoryRule = z
  .object({
    duration,
    action: z.enum(['delete', 'anonymize']).default('delete'),
    lockMode: z.enum(['none', 'governance', 'compliance']).default('none'),
    legalHoldAllowed: z.boolean().default(true),
  })
  .strict();

export const policyFileSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9-]{1,64}$/),
    description: z.string().max(500).optional(),
    /** Tenants this policy applies to; the policy named "default" applies to every other tenant. */
    tenants: z.array(z.string()).default([]),
    categories: z
      .object(
        Object.fromEntries(DATA_CATEGORIES.map((c) => [c, categoryRule])) as Record<DataCategory, typeof categoryRule>,
      )
      .strict(),
  })
  .strict();

export type RetentionPolicy = z.infer<typeof policyFileSchema> & { file: string };
export type CategoryRule = RetentionPolicy['categories'][DataCategory];

export class PolicyError extends Error {}

/**
 * Reads every `*.yaml` in the folder, validates each against the schema
 * (published as retention-policies/schema.json), and refuses a set without a
 * "default" policy or with a tenant claimed twice.
 */
export function loadPolicies(dir: string): Map<string, RetentionPolicy> {
  const policies = new Map<string, RetentionPolicy>();
  const problems: string[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()) {
    const full = path.join(dir, file);
    const parsed = policyFileSchema.safeParse(parseYaml(readFileSync(full, 'utf8')));
    if (!parsed.success) {
      for (const i of parsed.error.issues) problems.push(`${file}: ${i.path.join('.')}: ${i.message}`);
      continue;
    }
    if (policies.has(parsed.data.name)) problems.push(`${file}: policy "${parsed.data.name}" is defined twice`);
    for (const [category, rule] of Object.entries(parsed.data.categories) as Array<[DataCategory, CategoryRule]>) {
      if (rule.action === 'anonymize' && !ANONYMIZABLE.has(category))
        problems.push(
          `${file}: categories.${category}.action: "anonymize" is not possible for ${category}; use delete`,
        );
    }
    policies.set(parsed.data.name, { ...parsed.data, file });
  }
  if (!policies.has('default') && problems.length === 0) problems.push('no policy named "default"');
  const owner = new Map<string, string>();
  for (const p of policies.values()) {
    for (const t of p.tenants) {
      if (owner.has(t)) problems.push(`tenant "${t}" is claimed by policies "${owner.get(t)}" and "${p.name}"`);
      owner.set(t, p.name);
    }
  }
  if (problems.length) throw new PolicyError(`invalid retention policies in ${dir}:\n  - ${problems.join('\n  - ')}`);
  return policies;
}

/**
 * The policy for a tenant: the one that names it, else the tenant's configured one; an unknown name is an error, never
 * "default".
 */
export function policyFor(
  policies: Map<string, RetentionPolicy>,
  tenant: string,
  configured = 'default',
): RetentionPolicy {
  for (const p of policies.values()) if (p.tenants.includes(tenant)) return p;
  const p = policies.get(configured);
  if (!p)
    throw new PolicyError(
      `tenant "${tenant}" names the retention policy "${configured}", which does not exist (policies: ` +
        `${[...policies.keys()].join(', ')})`,
    );
  return p;
}
