import { DATA_CATEGORIES, type RetentionPolicy } from '../retention/index.js';
import type { SubprocessorRegister } from './subprocessors.js';

const human = (seconds: number) => (seconds % 31_536_000 === 0 ? `${seconds / 31_536_000} year(s)` : seconds % 86400 === 0 ? `${seconds / 86400} day(s)` : `${seconds} s`);

/**
 * Record of processing activities (GDPR art. 30), generated from what the
 * deployment actually does: its retention policies, its subprocessors and the
 * data categories the gateway stores.
 */
export function recordOfProcessing(policies: Map<string, RetentionPolicy>, register: SubprocessorRegister) {
  const recipients = register.subprocessors.map((p) => `${p.name} (${p.legalEntity}, ${p.country}; ${p.transferMechanism})`);
  const retention = (category: (typeof DATA_CATEGORIES)[number]) =>
    [...policies.values()].map((p) => `${p.name}: ${human(p.categories[category].duration)}, then ${p.categories[category].action}${p.categories[category].lockMode !== 'none' ? ` (${p.categories[category].lockMode} lock)` : ''}`).join('; ');
  const activities = [
    { name: 'Video calls', purpose: 'Connecting participants in audio/video calls', legalBasis: 'Art. 6(1)(b) contract, or 6(1)(e) public task', subjects: 'Call participants', data: 'Identity given by the business app, display name, IP address, media (not stored unless recorded)', retention: 'Media not stored; session state only while the call lasts' },
    { name: 'Call quality monitoring', purpose: 'Measuring and improving call quality (stats, events, MOS)', legalBasis: 'Art. 6(1)(f) legitimate interest', subjects: 'Call participants (pseudonymised)', data: 'Pseudonym, network statistics, call events, browser statistics', retention: `track stats — ${retention('track_stats')}; client stats — ${retention('client_stats')}; events — ${retention('call_events')}` },
    { name: 'Call recording', purpose: 'Recording calls where the room policy requires it (evidence, quality, training)', legalBasis: 'Art. 6(1)(c) legal obligation or 6(1)(a) consent, per room policy', subjects: 'Recorded participants', data: 'Audio and video of the participant, pseudonym', retention: retention('recordings') },
    { name: 'Audit trail', purpose: 'Accountability: access to personal data and administrative actions', legalBasis: 'Art. 6(1)(c) legal obligation (art. 5(2), 32)', subjects: 'Staff and participants concerned by an access', data: 'Actor, action, target, pseudonym, IP address', retention: retention('audit_log') },
    { name: 'Data subject requests', purpose: 'Answering access and erasure requests', legalBasis: 'Art. 6(1)(c) legal obligation (art. 15-17)', subjects: 'Requesting participants', data: 'Exported personal data', retention: retention('dsar_exports') },
  ];
  return { generatedAt: new Date().toISOString(), controller: register.controller, recipients, transfersOutsideEu: register.subprocessors.filter((p) => p.transferMechanism !== 'none (EEA)').map((p) => p.name), securityMeasures: ['TLS for signaling and API, DTLS-SRTP for media', 'Pseudonymisation (HMAC-SHA256 per tenant) of stats and events', 'Object Lock and server-side encryption of recordings', 'Hash-chained, signed audit log', 'API keys stored hashed; secrets never logged'], activities };
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
