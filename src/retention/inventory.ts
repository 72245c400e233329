import type { DataCategory } from './policy.js';

/**
 * The inventory of everything the gateway stores, and the retention rule each
 * follows. test/retention.test.ts lists the tables in ClickHouse and the files
 * under DATA_DIR and fails on any that is not here, so a new table or file
 * cannot be added without deciding how long it is kept.
 */

/** A table whose rows expire per tenant, by a ClickHouse TTL (src/retention/clickhouseTtl.ts). */
export interface TtlRule {
  category: DataCategory;
  /** The column holding the row's time: the category's duration runs from it. */
  ts: string;
  /** Columns reset to '' when the category's action is `anonymize`. */
  identityColumns?: string[];
}

/** A table or file whose lifetime some code manages, or which holds no personal data. */
export interface ManagedRule {
  managedBy: string;
}

export const TABLE_RULES: Record<string, TtlRule | ManagedRule> = {
  participants: { category: 'participants', ts: 'updated_at' },
  track_stats: { category: 'track_stats', ts: 'ts', identityColumns: ['participant', 'peer_id'] },
  transport_stats: { category: 'transport_stats', ts: 'ts', identityColumns: ['participant', 'peer_id'] },
  client_stats: { category: 'client_stats', ts: 'ts', identityColumns: ['participant', 'peer_id'] },
  call_events: { category: 'call_events', ts: 'ts', identityColumns: ['participant', 'peer_id'] },
  // The join funnel is the call's lifecycle per participant: kept and anonymised as its call events are.
  join_funnel: { category: 'call_events', ts: 'ts', identityColumns: ['participant', 'peer_id'] },
  call_quality_agg: { category: 'call_quality', ts: 'ended' },
  access_log: { category: 'access_log', ts: 'ts', identityColumns: ['subject', 'source_ip'] },
  webhook_attempts: { category: 'webhook_attempts', ts: 'ts' },
  // Evidence: kept as long as the audit trail it belongs to.
  audit_log: { category: 'audit_log', ts: 'ts' },
  audit_checkpoints: { category: 'audit_log', ts: 'ts' },
  dsar_requests: { category: 'audit_log', ts: 'ts' },
  retention_deletions: { category: 'audit_log', ts: 'ts' },
  recordings: {
    managedBy:
      'analytical copy of the PostgreSQL catalog (dashboards), written by the catalog after each change: one row ' +
      'per recording, living as long as the recording (recordings rule: Object Lock, the sweeper, erasure); the ' +
      'version written at deletion by the sweeper or an erasure carries no pseudonym (participants = [])',
  },
  schema_migrations: { managedBy: 'schema versions; no personal data' },
  cluster_identity: {
    managedBy: 'the cluster id each node found in this ClickHouse (src/nodes/clusterIdentity.ts); no personal data',
  },
};

/**
 * The control plane's tables in PostgreSQL (embedded or a server): what each
 * holds of people, and what bounds its life. A test lists the tables of the
 * store after a run and fails on any without a rule here.
 */
export const STORE_TABLE_RULES: Record<string, ManagedRule> = {
  schema_migrations: { managedBy: 'schema versions; no personal data' },
  shared_secrets: { managedBy: 'secrets every node shares (token signing, pseudonym master secret); no personal data' },
  nodes: {
    managedBy:
      'one row per node (URL, region, heartbeat, load); no personal data; forgotten 7 days after it went silent',
  },
  retention_promises: {
    managedBy: "the COMPLIANCE lock promised to each tenant's recordings (tenant id, policy, duration); kept for good",
  },
  audit_heads: { managedBy: "each tenant's audit chain head (seq, hashes, times): kept as long as the chain" },
  audit_outbox: {
    managedBy:
      'audit entries (pseudonyms, source IPs) until ClickHouse acknowledges them (seconds; longer during a ' +
      'ClickHouse outage), then deleted here: the audit_log rule applies',
  },
  audit_signing_keys: {
    managedBy: 'the public half of every key that signed audit checkpoints and exports, on any node; kept as evidence',
  },
  rooms: { managedBy: 'declared rooms and their options; no personal data' },
  room_placements: { managedBy: 'which node holds each open call; released when the call ends; no personal data' },
  room_bans: {
    managedBy: 'removal bans: a SHA-256 of tenant, room and identity with an expiry, deleted once expired',
  },
  webhook_outbox: {
    managedBy:
      'webhook deliveries (bodies may name people) until delivered or given up (webhooks.maxAttempts), then ' +
      'deleted; the sweep vacuums the table; erasure redacts the subject from pending bodies',
  },
  tenants: {
    managedBy:
      'tenants changed through the admin API (settings, API key hashes, webhook endpoints and secrets); no personal ' +
      'data; a removed tenant stays as a tombstone',
  },
  recordings: {
    managedBy:
      'the recordings catalog (pseudonyms of the participants): one row per recording, living as long as the ' +
      'recording (recordings rule: Object Lock, the sweeper, erasure); the row left at deletion by the sweeper or ' +
      'an erasure carries no pseudonym',
  },
  dsar_requests: {
    managedBy:
      "data-subject requests (the subject's pseudonym, kind, status, summary): kept as proof each was answered " +
      "(art. 5(2)); the person's salt is destroyed by an erasure, so the pseudonym no longer leads to them",
  },
  store_imports: { managedBy: "the record of one-time imports of a previous version's data; no personal data" },
  subject_salts: {
    managedBy:
      "one salt per data subject, keyed by an HMAC of the identity (no identity): erasure deletes the subject's " +
      'salt on every node, so no pseudonym left can be recomputed from the identity',
  },
  subject_salts_erased: {
    managedBy:
      'one row per erasure whose salt may still sit in the pages of subject_salts until the table is rewritten ' +
      '(a counter, no identity); deleted once the rewrite is done',
  },
  webhook_endpoint_failures: {
    managedBy:
      'consecutive failed deliveries per webhook endpoint, counted by every node together; cleared by a success or ' +
      'when the endpoint is disabled; no personal data',
  },
};

export interface FileRule {
  /** Matches the path relative to DATA_DIR, with `/` separators. */
  pattern: RegExp;
  /** The policy category whose duration applies, if the rule is a duration. */
  category?: DataCategory;
  rule: string;
}

/** First match wins. */
export const FILE_RULES: FileRule[] = [
  {
    pattern: /^clickhouse\//,
    rule: "the embedded ClickHouse engine's storage: each table follows its TABLE_RULES entry",
  },
  {
    pattern: /^objects\//,
    category: 'recordings',
    rule:
      'recordings (local object store): Object Lock until retain-until, then deleted by the sweeper; erasure ' +
      'deletes every version',
  },
  {
    pattern: /^recordings\/(active|pending)\//,
    category: 'recordings',
    rule:
      'recordings being written or waiting for upload: deleted once the upload is verified, then the recordings ' +
      'rule',
  },
  {
    pattern: /^exports\/[0-9a-f-]{36}(\.[a-z]+|\.meta\.json)$/,
    category: 'dsar_exports',
    rule:
      "audit exports and DSAR archives: deleted by the retention sweep once older than the tenant's dsar_exports " +
      "duration; erasure deletes the subject's archives",
  },
  {
    pattern: /^exports\/dsar-access-[0-9a-f-]{36}\.tar$|^exports\/[0-9a-f-]{36}\//,
    category: 'dsar_exports',
    rule: 'a DSAR archive being built: renamed or removed when the request ends, else swept with the exports',
  },
  {
    pattern: /^spool\/seg-\d{12}\.log$/,
    rule:
      "telemetry rows waiting for ClickHouse: each row follows its table's rule (the sweep drops or anonymises " +
      "spooled rows past it); erasure removes the subject's rows",
  },
  {
    pattern: /^webhooks\/deliveries\.jsonl$/,
    rule:
      'webhook journal of versions before the PostgreSQL outbox: imported into the outbox at the first start, then ' +
      'deleted (its bodies name people: a copy would escape their erasure)',
  },
  {
    pattern: /^audit-journal(\.imported)?\/seg-\d{12}\.log$/,
    rule:
      'audit entries (pseudonyms, addresses) journaled by versions before the control plane: shipped to ' +
      'ClickHouse at the first start, then set aside as audit-journal.imported; then the audit_log rule',
  },
  {
    pattern: /^audit\/anchors\.jsonl$/,
    rule:
      'signed audit checkpoints anchored outside ClickHouse (local store): hashes and sequence numbers, no ' +
      'personal data; kept as evidence',
  },
  {
    pattern: /^room-bans\.json\.imported$/,
    rule:
      'removal bans of the version before PostgreSQL, imported into room_bans: SHA-256 hashes with an expiry, ' +
      'no identity in clear; kept as the import left it',
  },
  {
    pattern: /^postgres\//,
    rule: 'the embedded PostgreSQL (PGlite) of the control plane: each of its tables has its rule in STORE_TABLE_RULES',
  },
  { pattern: /^secrets\//, rule: 'keys and secrets; no personal data' },
  {
    pattern: /^(tenants|rooms|demo-tenant|retention-applied)\.json$|^(rooms|retention-applied)\.json\.imported$/,
    rule: 'configuration and state; no personal data',
  },
  {
    pattern: /^tenants\.json\.imported(\.\d+)?$/,
    rule:
      'tenants.json of a version before the control plane store, imported into its tenants table at the first ' +
      'start: kept as it was (0600, key hashes and webhook secrets), never read again; no personal data',
  },
  { pattern: /\.tmp$/, rule: 'a file being replaced atomically; renamed over its target at once' },
];

export function fileRule(relPath: string): FileRule | undefined {
  return FILE_RULES.find((r) => r.pattern.test(relPath));
}

/**
 * What a table's rule does to one row that has not reached ClickHouse yet (a
 * spooled row), at `now`: kept, dropped, or returned with its identity columns
 * reset. The same decision the table's TTL would make once it is inserted.
 */
export function expireRow(
  table: string,
  row: Record<string, unknown>,
  now: number,
  policyOf: (tenant: string) => {
    categories: Record<DataCategory, { duration: number; action: 'delete' | 'anonymize' }>;
  },
): 'keep' | 'drop' | Record<string, unknown> {
  const rule = TABLE_RULES[table];
  if (!rule || !('category' in rule)) return 'keep';
  const at = Number(
    typeof row[rule.ts] === 'string' ? Date.parse(`${String(row[rule.ts]).replace(' ', 'T')}Z`) : row[rule.ts],
  );
  const c = policyOf(String(row.tenant ?? '')).categories[rule.category];
  if (!Number.isFinite(at) || at + c.duration * 1000 > now) return 'keep';
  if (c.action === 'delete') return 'drop';
  return { ...row, ...Object.fromEntries((rule.identityColumns ?? []).map((col) => [col, ''])) };
}
