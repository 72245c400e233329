import type { DATA_CATEGORIES, RetentionPolicy } from '../retention/index.js';
import type { SubprocessorRegister } from './subprocessors.js';

const human = (seconds: number) => (seconds % 31_536_000 === 0 ? `${seconds / 31_536_000} year(s)` : seconds % 86400 === 0 ? `${seconds / 86400} day(s)` : `${seconds} s`);

/**
 * Record of processing activities (GDPR art. 30), generated from what the
 * deployment actually does: its retention policies, its subprocessors, the
 * data categories the gateway stores and how its storage is configured. It
 * promises nothing the code does not do: each retention it states is applied
 * (src/retention/inventory.ts), and erasure is described as it is done.
 */
export function recordOfProcessing(policies: Map<string, RetentionPolicy>, register: SubprocessorRegister, storage: { sse: 'none' | 's3' | 'kms'; store: 'local' | 's3' } = { sse: 'none', store: 'local' }) {
  const recipients = register.subprocessors.map((p) => `${p.name} (${p.legalEntity}, ${p.country}; ${p.transferMechanism})`);
  const retention = (category: (typeof DATA_CATEGORIES)[number]) =>
    [...policies.values()].map((p) => `${p.name}: ${human(p.categories[category].duration)}, then ${p.categories[category].action}${p.categories[category].lockMode !== 'none' ? ` (${p.categories[category].lockMode} lock)` : ''}`).join('; ');
  const activities = [
    {
      name: 'Video calls',
      purpose: 'Connecting participants in audio/video calls, and notifying the business app of who joins and leaves (webhooks)',
      legalBasis: 'Art. 6(1)(b) contract, or 6(1)(e) public task',
      subjects: 'Call participants',
      data: 'Identity given by the business app, display name, IP address, media (not stored unless recorded)',
      retention: `Media not stored; identity and display name (pseudonym mapping) — ${retention('participants')}; webhook bodies (identity, display name) kept only until delivered or given up, then removed from the journal by the retention sweep`,
    },
    {
      name: 'Call quality monitoring',
      purpose: 'Measuring and improving call quality (stats, events, MOS)',
      legalBasis: 'Art. 6(1)(f) legitimate interest',
      subjects: 'Call participants (pseudonymised)',
      data: 'Pseudonym, network statistics, call events, browser statistics',
      retention: `track stats — ${retention('track_stats')}; transport stats — ${retention('transport_stats')}; client stats — ${retention('client_stats')}; events — ${retention('call_events')}; per-call quality — ${retention('call_quality')}`,
    },
    { name: 'Call recording', purpose: 'Recording calls where the room policy requires it (evidence, quality, training)', legalBasis: 'Art. 6(1)(c) legal obligation or 6(1)(a) consent, per room policy', subjects: 'Recorded participants', data: 'Audio and video of the participant, pseudonym', retention: retention('recordings') },
    { name: 'Access records', purpose: 'Recording who accessed recordings, from where', legalBasis: 'Art. 6(1)(c) legal obligation (art. 32)', subjects: 'Staff and participants who access recordings', data: 'Actor, pseudonym of a participant, IP address', retention: retention('access_log') },
    { name: 'Webhook delivery log', purpose: 'Proving and troubleshooting deliveries to the business app', legalBasis: 'Art. 6(1)(f) legitimate interest', subjects: 'None directly (delivery metadata)', data: 'Endpoint, event name, outcome, error', retention: retention('webhook_attempts') },
    {
      name: 'Audit trail',
      purpose: 'Accountability: access to personal data and administrative actions',
      legalBasis: 'Art. 6(1)(c) legal obligation (art. 5(2), 32)',
      subjects: 'Staff and participants concerned by an access',
      data: 'Actor, action, target, pseudonym, IP address',
      retention: `${retention('audit_log')}. Kept on erasure (art. 17(3)(b)) and never altered, so its hash chain still verifies; erasure destroys the person's pseudonym salt instead, so their entries can no longer be linked to them`,
    },
    {
      name: 'Data subject requests',
      purpose: 'Answering access and erasure requests',
      legalBasis: 'Art. 6(1)(c) legal obligation (art. 15-17)',
      subjects: 'Requesting participants',
      data: 'Exported personal data; the record of each request (pseudonym)',
      retention: `archives — ${retention('dsar_exports')}, and deleted at the person's erasure; records of requests — as the audit trail. Erasure deletes the person's rows, every version of their recordings (except under legal hold or a COMPLIANCE lock, which the answer lists), rows still in the telemetry spool, their identity in pending webhook bodies, and their archives, then destroys their salt`,
    },
  ];
  const securityMeasures = [
    'TLS for signaling and API, DTLS-SRTP for media',
    'Pseudonymisation (HMAC-SHA256 with a key per tenant and a random salt per person, destroyed at erasure) of stats, events, the recording catalog and the audit trail',
    storage.store === 's3' ? `Object Lock of recordings${storage.sse === 'none' ? '' : ` and server-side encryption (${storage.sse === 'kms' ? 'SSE-KMS' : 'SSE-S3'})`}` : 'Object Lock semantics enforced by the local recording store (no encryption at rest by the gateway)',
    'Hash-chained, signed audit log',
    'API keys stored hashed; secrets never logged',
  ];
  return { generatedAt: new Date().toISOString(), controller: register.controller, recipients, transfersOutsideEu: register.subprocessors.filter((p) => p.transferMechanism !== 'none (EEA)').map((p) => p.name), securityMeasures, activities };
}

export function recordOfProcessingMarkdown(r: ReturnType<typeof recordOfProcessing>): string {
  return [
    '# Record of processing activities (GDPR art. 30)',
    '',
    `Controller: ${r.controller.name} (${r.controller.country}). Generated ${r.generatedAt}.`,
    '',
    '| Activity | Purpose | Legal basis | Data subjects | Personal data | Retention |',
    '| --- | --- | --- | --- | --- | --- |',
    ...r.activities.map((a) => `| ${a.name} | ${a.purpose} | ${a.legalBasis} | ${a.subjects} | ${a.data} | ${a.retention} |`),
    '',
    `Recipients (subprocessors): ${r.recipients.join('; ') || 'none'}.`,
    '',
    `Transfers outside the EEA: ${r.transfersOutsideEu.join(', ') || 'none'}.`,
    '',
    `Security measures: ${r.securityMeasures.join('; ')}.`,
  ].join('\n');
}
