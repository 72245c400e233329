import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Config, TenantConfig } from '../config/index.js';
import { escapeHtml } from '../html.js';
import { translator, type Lang, type Translate } from './i18n.js';

export const EU_COUNTRIES = [
  'AT',
  'BE',
  'BG',
  'HR',
  'CY',
  'CZ',
  'DK',
  'EE',
  'FI',
  'FR',
  'DE',
  'GR',
  'HU',
  'IE',
  'IT',
  'LV',
  'LT',
  'LU',
  'MT',
  'NL',
  'PL',
  'PT',
  'RO',
  'SK',
  'SI',
  'ES',
  'SE',
];

export const subprocessorsSchema = z
  .object({
    controller: z.object({ name: z.string().min(1), country: z.string().regex(/^[A-Z]{2}$/) }),
    /** Hosts on the operator's own infrastructure (not subprocessors), by name or `*.suffix`. */
    internalHosts: z.array(z.string().min(1)).default([]),
    subprocessors: z.array(
      z
        .object({
          name: z.string().min(1),
          legalEntity: z.string().min(1),
          country: z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2'),
          service: z.string().min(1),
          purposes: z.array(z.string().min(1)).min(1),
          dataCategories: z.array(z.string().min(1)).min(1),
          hostingLocations: z.array(z.string().regex(/^[A-Z]{2}$/)).min(1),
          dpaReference: z.string().min(1),
          transferMechanism: z.enum(['none (EEA)', 'adequacy decision', 'SCC', 'BCR']),
          /** Hostnames this subprocessor's services answer on, by name or `*.suffix`. */
          endpoints: z.array(z.string().min(1)).min(1),
        })
        .strict(),
    ),
  })
  .strict();
export type SubprocessorRegister = z.infer<typeof subprocessorsSchema>;

export function loadSubprocessors(file: string): SubprocessorRegister {
  const parsed = subprocessorsSchema.safeParse(parseYaml(readFileSync(file, 'utf8')));
  if (!parsed.success)
    throw new Error(
      `invalid ${file}:\n  - ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n  - ')}`,
    );
  return parsed.data;
}

const matches = (host: string, pattern: string) =>
  pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern;

export interface ComponentFinding {
  component: string;
  endpoint: string;
  host: string;
  processor: string | null;
  locations: string[];
  flags: string[];
}

/** What the running configuration sends personal data to, endpoint by endpoint. */
function components(
  config: Config,
  tenants: TenantConfig[],
  env: NodeJS.ProcessEnv,
  t: Translate,
): Array<{ component: string; endpoint: string; declaredLocation?: string }> {
  const out: Array<{ component: string; endpoint: string; declaredLocation?: string }> = [];
  const s = config.storage;
  out.push({
    component: t('sub.component.storage'),
    endpoint: s.driver === 's3' ? s.s3Endpoint! : 'local://data-dir',
    declaredLocation: s.country,
  });
  out.push({ component: t('sub.component.clickhouse'), endpoint: config.clickhouse.url ?? 'embedded://chdb' });
  for (const u of config.ice.turnUrls) out.push({ component: t('sub.component.turn'), endpoint: u });
  const otlp = env.OTEL_EXPORTER_OTLP_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (otlp) out.push({ component: t('sub.component.otel'), endpoint: otlp });
  for (const tenant of tenants)
    for (const w of tenant.webhooks)
      out.push({ component: t('sub.component.webhook', { tenant: tenant.id }), endpoint: w.url });
  return out;
}

function hostOf(endpoint: string): string {
  if (/^(local|embedded):\/\//.test(endpoint)) return 'localhost';
  const turn = /^turns?:([^:?]+)/.exec(endpoint);
  if (turn) return turn[1]!;
  try {
    return new URL(endpoint).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return endpoint;
  }
}

/**
 * Compares the register with what the configuration uses. Flags any endpoint
 * that belongs to no declared subprocessor (and is not internal), and any
 * location outside France (a note) or outside the EU (a finding). Flags start
 * with a stable code (UNDECLARED_PROCESSOR, LOCATION_MISMATCH, OUTSIDE_EU,
 * OUTSIDE_FRANCE); the rest of each text is in `lang`.
 */
export function subprocessorReport(
  register: SubprocessorRegister,
  config: Config,
  tenants: TenantConfig[],
  env: NodeJS.ProcessEnv = process.env,
  lang: Lang = 'en',
) {
  const t = translator(lang);
  const findings: ComponentFinding[] = [];
  for (const c of components(config, tenants, env, t)) {
    const host = hostOf(c.endpoint);
    const internal =
      register.internalHosts.some((p) => matches(host, p)) || host === 'localhost' || host === '127.0.0.1';
    const processor = register.subprocessors.find((p) => p.endpoints.some((e) => matches(host, e)));
    const flags: string[] = [];
    let locations: string[] = [];
    if (processor) locations = [...processor.hostingLocations];
    else if (internal) locations = [register.controller.country];
    else flags.push(t('sub.flag.undeclared'));
    if (c.declaredLocation) {
      if (processor && !processor.hostingLocations.includes(c.declaredLocation))
        flags.push(
          t('sub.flag.mismatch', {
            configured: c.declaredLocation,
            processor: processor.name,
            declared: processor.hostingLocations.join(', '),
          }),
        );
      locations = [...new Set([...locations, c.declaredLocation])];
    }
    for (const l of locations) {
      if (!EU_COUNTRIES.includes(l)) flags.push(t('sub.flag.outsideEu', { country: l }));
      else if (l !== 'FR') flags.push(t('sub.flag.outsideFrance', { country: l }));
    }
    findings.push({
      component: c.component,
      endpoint: c.endpoint.replace(/\/\/[^@/]*@/, '//***@'),
      host,
      processor: processor?.name ?? (internal ? t('sub.internal') : null),
      locations,
      flags,
    });
  }
  const unused = register.subprocessors.filter((p) => !findings.some((f) => f.processor === p.name)).map((p) => p.name);
  return {
    generatedAt: new Date().toISOString(),
    lang,
    controller: register.controller,
    findings,
    declaredButUnused: unused,
    ok: findings.every((f) => !f.flags.some((x) => !x.startsWith('OUTSIDE_FRANCE'))),
  };
}

export type SubprocessorReport = ReturnType<typeof subprocessorReport>;

export function subprocessorReportMarkdown(r: SubprocessorReport, register: SubprocessorRegister): string {
  const t = translator(r.lang);
  const header = (...keys: Parameters<Translate>[0][]) => [
    `| ${keys.map((k) => t(k)).join(' | ')} |`,
    `|${' --- |'.repeat(keys.length)}`,
  ];
  const lines = [
    `# ${t('sub.title')}`,
    '',
    t('sub.status', {
      name: r.controller.name,
      country: r.controller.country,
      at: r.generatedAt,
      status: r.ok ? t('sub.status.ok') : t('sub.status.findings'),
    }),
    '',
    `## ${t('sub.used')}`,
    '',
    ...header('sub.col.component', 'sub.col.endpoint', 'sub.col.processor', 'sub.col.locations', 'sub.col.flags'),
    ...r.findings.map(
      (f) =>
        `| ${f.component} | \`${f.endpoint}\` | ${f.processor ?? t('sub.undeclared')} | ` +
        `${f.locations.join(', ') || '?'} | ${f.flags.join('<br>') || '—'} |`,
    ),
    '',
    `## ${t('sub.register')}`,
    '',
    ...header(
      'sub.col.name',
      'sub.col.entity',
      'sub.col.country',
      'sub.col.service',
      'sub.col.purposes',
      'sub.col.data',
      'sub.col.hosting',
      'sub.col.dpa',
      'sub.col.transfers',
    ),
    ...register.subprocessors.map(
      (p) =>
        `| ${p.name} | ${p.legalEntity} | ${p.country} | ${p.service} | ${p.purposes.join(', ')} | ` +
        `${p.dataCategories.join(', ')} | ${p.hostingLocations.join(', ')} | ${p.dpaReference} | ` +
        `${t(`sub.transfer.${p.transferMechanism}`)} |`,
    ),
    '',
    r.declaredButUnused.length ? t('sub.unused', { list: r.declaredButUnused.join(', ') }) : '',
  ];
  return lines.join('\n');
}

export function markdownToHtml(title: string, md: string, lang: Lang = 'en'): string {
  const esc = escapeHtml;
  const body = md
    .split('\n\n')
    .map((block) => {
      if (block.startsWith('# ')) return `<h1>${esc(block.slice(2))}</h1>`;
      if (block.startsWith('## ')) return `<h2>${esc(block.slice(3))}</h2>`;
      if (block.startsWith('|')) {
        const rows = block.split('\n').filter((l) => !/^\|\s*---/.test(l));
        return `<table>${rows
          .map(
            (r, i) =>
              `<tr>${r
                .split('|')
                .slice(1, -1)
                .map((c) =>
                  i === 0 ? `<th>${esc(c.trim())}</th>` : `<td>${esc(c.trim()).replace(/&lt;br&gt;/g, '<br>')}</td>`,
                )
                .join('')}</tr>`,
          )
          .join('')}</table>`;
      }
      return `<p>${esc(block)}</p>`;
    })
    .join('\n');
  return (
    `<!doctype html><html lang="${lang}"><head><meta ` +
    `charset="utf-8"><title>${esc(title)}</title><style>body{font:13px sans-serif;max-width:70rem;margin:2rem ` +
    `auto}table{border-collapse:collapse}td,th{border:1px solid #999;padding:3px ` +
    `6px;text-align:left}th{background:#eee}</style></head><body>${body}</body></html>`
  );
}
