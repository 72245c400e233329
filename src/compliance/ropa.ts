import type { DATA_CATEGORIES, RetentionPolicy } from '../retention/index.js';
import { type Lang, type Translate, translator } from './i18n.js';
import type { SubprocessorRegister } from './subprocessors.js';

const human = (t: Translate, seconds: number) =>
  seconds % 31_536_000 === 0
    ? t('duration.years', { n: seconds / 31_536_000 })
    : seconds % 86400 === 0
      ? t('duration.days', { n: seconds / 86400 })
      : t('duration.seconds', { n: seconds });

/**
 * Record of processing activities (GDPR art. 30), generated from what the
 * deployment actually does: its retention policies, its subprocessors, the
 * data categories the gateway stores and how its storage is configured. It
 * promises nothing the code does not do: each retention it states is applied
 * (src/retention/inventory.ts), and erasure is described as it is done.
 * Written in `lang` (src/compliance/i18n.ts); the register's own entries appear as written.
 */
export function recordOfProcessing(
  policies: Map<string, RetentionPolicy>,
  register: SubprocessorRegister,
  storage: { sse: 'none' | 's3' | 'kms'; store: 'local' | 's3' } = { sse: 'none', store: 'local' },
  lang: Lang = 'en',
) {
  const t = translator(lang);
  const recipients = register.subprocessors.map((p) =>
    t('ropa.recipient', {
      name: p.name,
      entity: p.legalEntity,
      country: p.country,
      mechanism: t(`sub.transfer.${p.transferMechanism}`),
    }),
  );
  const retention = (category: (typeof DATA_CATEGORIES)[number]) =>
    [...policies.values()]
      .map((p) => {
        const rule = p.categories[category];
        const lock =
          rule.lockMode !== 'none' ? t('retention.lock', { mode: t(`retention.lock.${rule.lockMode}`) }) : '';
        return (
          t('retention.rule', {
            policy: p.name,
            duration: human(t, rule.duration),
            action: t(`retention.action.${rule.action}`),
          }) + lock
        );
      })
      .join('; ');
  const activity = (
    id: 'calls' | 'quality' | 'recording' | 'access' | 'webhooks' | 'audit' | 'dsar',
    retained: string,
  ) => ({
    name: t(`ropa.${id}.name`),
    purpose: t(`ropa.${id}.purpose`),
    legalBasis: t(`ropa.${id}.basis`),
    subjects: t(`ropa.${id}.subjects`),
    data: t(`ropa.${id}.data`),
    retention: retained,
  });
  const activities = [
    activity('calls', t('ropa.calls.retention', { participants: retention('participants') })),
    activity(
      'quality',
      t('ropa.quality.retention', {
        track: retention('track_stats'),
        transport: retention('transport_stats'),
        client: retention('client_stats'),
        events: retention('call_events'),
        quality: retention('call_quality'),
      }),
    ),
    activity('recording', retention('recordings')),
    activity('access', retention('access_log')),
    activity('webhooks', retention('webhook_attempts')),
    activity('audit', t('ropa.audit.retention', { audit: retention('audit_log') })),
    activity('dsar', t('ropa.dsar.retention', { exports: retention('dsar_exports') })),
  ];
  const sse = storage.sse === 'kms' ? 'SSE-KMS' : 'SSE-S3';
  const securityMeasures = [
    t('ropa.security.transport'),
    t('ropa.security.pseudonyms'),
    storage.store === 's3'
      ? storage.sse === 'none'
        ? t('ropa.security.s3Lock')
        : t('ropa.security.s3LockEncrypted', { sse })
      : t('ropa.security.localLock'),
    t('ropa.security.audit'),
    t('ropa.security.keys'),
  ];
  return {
    generatedAt: new Date().toISOString(),
    lang,
    controller: register.controller,
    recipients,
    transfersOutsideEu: register.subprocessors.filter((p) => p.transferMechanism !== 'none (EEA)').map((p) => p.name),
    securityMeasures,
    activities,
  };
}

export function recordOfProcessingMarkdown(r: ReturnType<typeof recordOfProcessing>): string {
  const t = translator(r.lang);
  const list = (items: string[]) => items.join('; ') || t('none');
  const columns = (['activity', 'purpose', 'basis', 'subjects', 'data', 'retention'] as const).map((c) =>
    t(`ropa.col.${c}`),
  );
  return [
    `# ${t('ropa.title')}`,
    '',
    t('ropa.controller', { name: r.controller.name, country: r.controller.country, at: r.generatedAt }),
    '',
    `| ${columns.join(' | ')} |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...r.activities.map(
      (a) => `| ${a.name} | ${a.purpose} | ${a.legalBasis} | ${a.subjects} | ${a.data} | ${a.retention} |`,
    ),
    '',
    t('ropa.recipients', { list: list(r.recipients) }),
    '',
    t('ropa.transfers', { list: r.transfersOutsideEu.join(', ') || t('none') }),
    '',
    t('ropa.security', { list: list(r.securityMeasures) }),
  ].join('\n');
}
