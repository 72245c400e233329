import { afterAll, beforeAll, describe, test } from 'vitest';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  exportAudit,
  loadSubprocessors,
  markdownToHtml,
  recordOfProcessing,
  recordOfProcessingMarkdown,
  subprocessorReport,
  subprocessorReportMarkdown,
} from '../src/compliance/index.js';
import { CATALOGUES, documentLanguage, LANGUAGES, translator, type Lang } from '../src/compliance/i18n.js';
import { loadConfig } from '../src/config/index.js';
import { COMMANDS } from '../bin/commands.mjs';
import { DPO_KEY, dpoRequest, startGateway, type TestGateway } from './helpers/gateway.js';
import { launchBrowser } from './helpers/browser.js';

const run = promisify(execFile);
let gw: TestGateway;
beforeAll(async () => {
  gw = await startGateway({ writer: { flushIntervalMs: 100 } });
});
afterAll(() => gw?.close());

const dpo = (method: string, url: string, payload?: object) => dpoRequest(gw, method, url, payload);
const tmp = (prefix: string) => mkdtempSync(path.join(os.tmpdir(), prefix));
const cli = (args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, ['bin/vigie.mjs', ...args], {
    env: { ...process.env, VIGIE_URL: gw.url, VIGIE_API_KEY: DPO_KEY.key, ...env },
  });
const period = () => ({
  client: gw.app.clickhouse.client,
  db: 'vigie',
  from: new Date(Date.now() - 3600_000),
  to: new Date(Date.now() + 60_000),
});

/**
 * The English catalogue's fixed text that a French document must not hold:
 * each piece of an English message between its placeholders, when the French
 * message differs and does not hold that piece itself (codes such as OUTSIDE_EU, SHA-256).
 */
function englishFragments(): string[] {
  const out = new Set<string>();
  for (const [key, en] of Object.entries(CATALOGUES.en)) {
    const fr = CATALOGUES.fr[key as keyof typeof CATALOGUES.fr];
    if (fr === en) continue;
    for (const piece of en.split(/\{\w+\}/)) {
      const f = piece.replace(/^[\s.,;:()—*…-]+|[\s.,;:()—*…-]+$/g, '');
      if (f.length >= 3 && /\p{L}/u.test(f) && !fr.includes(f)) out.add(f);
    }
  }
  return [...out];
}
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
function assertNoEnglish(document: string, what: string) {
  // The text a reader sees: no markup (class names), then entities decoded.
  const text = document
    .replace(/<style>.*?<\/style>/s, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#39;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');
  // Whole words only, and not inside a path or a code (compliance/subprocessors.yaml, recording.read).
  const found = englishFragments().filter((f) =>
    new RegExp(`(?<![\\p{L}/._])${escapeRe(f)}(?![\\p{L}/._])`, 'u').test(text),
  );
  assert.deepEqual(found, [], `${what} holds English fixed text`);
}

/** A register as a French controller writes it (its own entries are data, in its own language). */
function frenchRegister() {
  const file = path.join(tmp('vigie-sub-fr-'), 'sous-traitants.yaml');
  writeFileSync(
    file,
    `controller: { name: "Mairie de Villeneuve", country: FR }
internalHosts: [localhost]
subprocessors:
  - name: Hébergeur Exemple
    legalEntity: Exemple SAS
    country: FR
    service: Serveurs dédiés
    purposes: [hébergement de la plateforme vidéo]
    dataCategories: [enregistrements des appels]
    hostingLocations: [FR]
    dpaReference: contrat de sous-traitance signé le 2026-01-15
    transferMechanism: none (EEA)
    endpoints: ["*.exemple.fr"]
  - name: Nuage Américain
    legalEntity: Cloud Inc.
    country: US
    service: Stockage objet
    purposes: [stockage des enregistrements]
    dataCategories: [enregistrements des appels]
    hostingLocations: [US]
    dpaReference: avenant du 2026-02-01
    transferMechanism: SCC
    endpoints: ["*.cloud.example"]
`,
  );
  return loadSubprocessors(file);
}

describe('documents in French and English', () => {
  test('both catalogues hold the same keys, and every message keeps the same placeholders', () => {
    assert.deepEqual(LANGUAGES, ['en', 'fr']);
    const keys = (lang: Lang) => Object.keys(CATALOGUES[lang]).sort();
    assert.deepEqual(keys('fr'), keys('en'));
    for (const key of keys('en')) {
      const placeholders = (lang: Lang) =>
        (CATALOGUES[lang][key as keyof typeof CATALOGUES.en].match(/\{\w+\}/g) ?? []).sort();
      assert.deepEqual(placeholders('fr'), placeholders('en'), key);
      assert.ok(CATALOGUES.fr[key as keyof typeof CATALOGUES.en].trim(), `${key} is empty in French`);
    }
    assert.ok(englishFragments().length > 100, 'the check below looks for the English text');
  });

  test('the record of processing, the subprocessor report and the audit export in French hold no English fixed text, and use the CNIL terms', async () => {
    const register = frenchRegister();
    const ropa = recordOfProcessingMarkdown(
      recordOfProcessing(gw.app.retention.policies(), register, { sse: 'kms', store: 's3' }, 'fr'),
    );
    const ropaHtml = markdownToHtml(translator('fr')('ropa.title'), ropa, 'fr');
    for (const term of [
      'Registre des activités de traitement',
      'Responsable du traitement',
      'Finalités',
      'Durées de conservation',
      'Base légale',
      'Catégories de personnes concernées',
      'Catégories de données personnelles',
      'Destinataires (sous-traitants)',
      'Mesures de sécurité',
    ])
      assert.ok(ropa.includes(term), term);
    assert.match(ropa, /default : 30 jour\(s\), puis suppression \(verrouillage gouvernance\)/);
    assert.match(ropaHtml, /^<!doctype html><html lang="fr">/);
    assertNoEnglish(ropa, 'the French record of processing');
    assertNoEnglish(ropaHtml, 'the French record of processing (HTML)');

    const cfg = loadConfig({
      VIGIE_STORAGE_DRIVER: 's3',
      VIGIE_S3_ENDPOINT: 'https://s3.us-east-1.amazonaws.com',
      VIGIE_S3_ACCESS_KEY: 'abc',
      VIGIE_S3_SECRET_KEY: 'abcdefgh',
      VIGIE_STORAGE_COUNTRY: 'US',
    });
    const report = subprocessorReport(
      register,
      cfg,
      [],
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.eu01.nr-data.net' },
      'fr',
    );
    const sub = subprocessorReportMarkdown(report, register);
    for (const term of [
      'Sous-traitants',
      'Responsable du traitement',
      'Registre des sous-traitants',
      'anomalies à corriger',
      'non déclaré',
      'CCT (clauses contractuelles types)',
      'aucun (EEE)',
    ])
      assert.ok(sub.includes(term), term);
    // The flags keep their stable codes; their explanations are French.
    assert.ok(report.findings[0]!.flags.includes('OUTSIDE_EU : US'), JSON.stringify(report.findings[0]));
    assert.ok(report.findings[0]!.flags.some((f) => f.startsWith('UNDECLARED_PROCESSOR : ')));
    assertNoEnglish(sub, 'the French subprocessor report');
    assertNoEnglish(markdownToHtml(translator('fr')('sub.title'), sub, 'fr'), 'the French subprocessor report (HTML)');

    const tenant = 'dpo-fr';
    for (const action of [
      'recording.read',
      'dsar.access',
      'retention.delete',
      'recording.legal_hold',
      'recording.delete',
      'token.mint',
    ])
      await gw.app.compliance!.audit.append({ tenant, actor: 'key:dpo1', action, target: 'recording:r1' });
    await gw.app.compliance!.audit.flush();
    const file = path.join(tmp('vigie-fr-'), 'audit.html');
    await exportAudit({
      ...period(),
      tenant,
      format: 'html',
      file,
      lang: 'fr',
      verification: {
        jwksUrl: 'https://vigie.example.fr/.well-known/jwks.json',
        kid: 'vigie-audit-abc',
        baseUrl: 'https://vigie.example.fr',
        fileName: 'audit.html',
      },
    });
    const page = readFileSync(file, 'utf8');
    for (const term of [
      "Export du journal d'audit",
      'Synthèse',
      'Entrées par action',
      'Accès aux enregistrements',
      'Vérifier ce fichier',
      'RGPD art. 15-17 (demande de la personne concernée)',
      'Horodatage (UTC)',
    ])
      assert.ok(page.includes(term.replace(/'/g, '&#39;')), term);
    assert.match(page, /<html lang="fr">/);
    assertNoEnglish(page, 'the French audit export');

    // The same documents in English (the default) hold the English text.
    const english = recordOfProcessingMarkdown(recordOfProcessing(gw.app.retention.policies(), register));
    assert.ok(english.startsWith('# Record of processing activities (GDPR art. 30)'));
    assert.equal(documentLanguage(undefined, undefined), 'en');
    assert.equal(documentLanguage(undefined, { id: 't', defaultLanguage: 'fr' }), 'fr', "the tenant's default");
    assert.equal(documentLanguage('en', { id: 't', defaultLanguage: 'fr' }), 'en', 'what is asked for wins');
  });

  test('the API and the command line take a lang option, and refuse a language they do not have', async () => {
    const fr = await dpo('GET', '/v1/compliance/reports/ropa?format=html&lang=fr');
    assert.equal(fr.statusCode, 200);
    assert.match(fr.body, /<html lang="fr"><head><meta charset="utf-8"><title>Registre des activités de traitement/);
    const en = await dpo('GET', '/v1/compliance/reports/subprocessors?format=md');
    assert.match(en.body, /^# Subprocessors and data residency/);
    const bad = await dpo('GET', '/v1/compliance/reports/ropa?format=md&lang=de');
    assert.deepEqual([bad.statusCode, bad.json().error.code], [400, 'INVALID_REQUEST']);
    const badExport = await dpo('POST', '/v1/compliance/exports', {
      from: new Date(Date.now() - 60_000).toISOString(),
      to: new Date().toISOString(),
      format: 'html',
      lang: 'de',
    });
    assert.deepEqual([badExport.statusCode, badExport.json().error.code], [400, 'INVALID_REQUEST']);
    const { stdout } = await cli(['report', 'subprocessors', '--format', 'md', '--lang', 'fr']);
    assert.match(stdout, /^# Sous-traitants et localisation des données/);
    const out = path.join(tmp('vigie-cli-fr-'), 'audit.html');
    await cli([
      'report',
      'audit',
      '--from',
      new Date(Date.now() - 3600_000).toISOString(),
      '--to',
      new Date(Date.now() + 60_000).toISOString(),
      '--format',
      'html',
      '--lang',
      'fr',
      '--out',
      out,
    ]);
    assert.match(readFileSync(out, 'utf8'), /<html lang="fr">.*<h2>Synthèse<\/h2>/s);
  });
});

describe('the audit export summary page', () => {
  test("the summary's numbers are the entries' own: per action, per actor, accesses to recordings", async () => {
    const tenant = 'dpo-summary';
    const plan: Array<[actor: string, action: string, target: string, times: number]> = [
      ['key:alice', 'recording.read', 'recording:r1', 3],
      ['key:alice', 'recording.download', 'recording:r2', 1],
      ['key:bob', 'recording.read', 'recording:r1', 2],
      ['key:bob', 'recordings.list', '', 4],
      ['key:carol', 'token.mint', 'room:a', 5],
      ['system:retention', 'retention.delete', 'recording:r3', 2],
    ];
    for (const [actor, action, target, times] of plan)
      for (let i = 0; i < times; i++) await gw.app.compliance!.audit.append({ tenant, actor, action, target });
    await gw.app.compliance!.audit.flush();
    const dir = tmp('vigie-summary-');
    await exportAudit({ ...period(), tenant, format: 'jsonl', file: path.join(dir, 'a.jsonl') });
    const entries = readFileSync(path.join(dir, 'a.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { actor: string; action: string; target: string });
    const { rows } = await exportAudit({ ...period(), tenant, format: 'html', file: path.join(dir, 'a.html') });
    assert.equal(rows, entries.length);
    const page = readFileSync(path.join(dir, 'a.html'), 'utf8');
    const summary = page.slice(page.indexOf('<section class="summary">'), page.indexOf('</section>'));
    assert.ok(
      summary.length > 0 && page.indexOf('</section>') < page.indexOf('<table class="entries">'),
      'the summary comes first',
    );

    const tableRows = (cls: string) =>
      [
        ...(new RegExp(`<table class="${cls}">(.*?)</table>`, 's').exec(summary)?.[1] ?? '').matchAll(
          /<tr><td>(.*?)<\/td><\/tr>/g,
        ),
      ].map((m) => m[1]!.split('</td><td>'));
    const count = (key: (e: (typeof entries)[number]) => string, of = entries) =>
      Object.fromEntries([...new Set(of.map(key))].map((k) => [k, String(of.filter((e) => key(e) === k).length)]));
    assert.deepEqual(
      Object.fromEntries(tableRows('by-action')),
      count((e) => e.action),
    );
    assert.deepEqual(
      Object.fromEntries(tableRows('by-actor')),
      count((e) => e.actor),
    );
    const accesses = entries.filter((e) => ['recording.read', 'recording.download'].includes(e.action));
    assert.deepEqual(
      Object.fromEntries(tableRows('recordings').map((r) => [`${r[0]} ${r[1]}`, r[2]])),
      count((e) => `${e.target} ${e.actor}`, accesses),
    );
    assert.match(summary, new RegExp(`Accesses to recordings \\(read, download\\): ${accesses.length}\\.`));
    assert.match(summary, new RegExp(`Entries in this export: ${entries.length} `));
    assert.match(summary, /Period: \d{4}-\d\d-\d\dT[\d:.]+Z to \d{4}-/);
  });

  test('the summary says how to verify the file, and that command verifies the downloaded export', async () => {
    const from = new Date(Date.now() - 3600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const created = await dpo('POST', '/v1/compliance/exports', { from, to, format: 'html' });
    assert.equal(created.statusCode, 201, created.body);
    const { id, kid, jws, download } = created.json();
    const file = (await dpo('GET', download)).rawPayload;
    const page = file.toString();
    const jwksUrl = `${gw.app.config.server.publicUrl}/.well-known/jwks.json`;
    assert.ok(page.includes(`Signing key (kid): ${kid}`), 'the kid');
    assert.ok(page.includes(`Public key set (JWKS): ${jwksUrl}`), 'the JWKS URL');
    const command = /<pre class="verify-command">(.*?)<\/pre>/.exec(page)?.[1];
    assert.equal(command, `VIGIE_URL=${gw.app.config.server.publicUrl} vigie verify vigie-audit-${id}.html`);

    // Run that command, as written, on the file saved under that name with its signature.
    const dir = tmp('vigie-verify-');
    writeFileSync(path.join(dir, `vigie-audit-${id}.html`), file);
    writeFileSync(path.join(dir, `vigie-audit-${id}.html.jws`), `${jws}\n`);
    const args = command!.split(' ').slice(2);
    const ok = await run(process.execPath, [path.resolve('bin/vigie.mjs'), ...args], {
      cwd: dir,
      env: { ...process.env, VIGIE_URL: gw.url, VIGIE_API_KEY: '' },
    });
    assert.deepEqual([JSON.parse(ok.stdout).ok, JSON.parse(ok.stdout).kid], [true, kid]);
    const tampered = Buffer.from(file);
    tampered[100] = tampered[100]! ^ 0x01;
    writeFileSync(path.join(dir, `vigie-audit-${id}.html`), tampered);
    const failed = await run(process.execPath, [path.resolve('bin/vigie.mjs'), ...args], {
      cwd: dir,
      env: { ...process.env, VIGIE_URL: gw.url },
    }).catch((e) => e);
    assert.equal(failed.code, 3);
    assert.equal(JSON.parse(failed.stdout).ok, false);
  });

  test('the hash column does not crowd out the readable ones, and keeps the full hash', async () => {
    const tenant = 'dpo-layout';
    for (let i = 0; i < 5; i++)
      await gw.app.compliance!.audit.append({
        tenant,
        actor: `key:dpo${i}`,
        action: 'recording.read',
        target: `recording:0b6f7c1e-3d5a-4f7e-9a1b-${i}e2d3c4b5a69`,
      });
    await gw.app.compliance!.audit.flush();
    const file = path.join(tmp('vigie-layout-'), 'a.html');
    await exportAudit({ ...period(), tenant, format: 'html', file });
    const hashes = (
      await gw.query<{ hash: string }>(`SELECT hash FROM vigie.audit_log WHERE tenant = {t:String} ORDER BY seq`, {
        t: tenant,
      })
    ).map((r) => r.hash);
    const browser = await launchBrowser();
    try {
      const page = await browser.context.newPage();
      // The printable width of A4 landscape with 10 mm margins (277 mm at 96 dpi).
      await page.setViewportSize({ width: 1047, height: 800 });
      await page.emulateMedia({ media: 'print' });
      await page.goto(`file://${file}`);
      const layout = await page.evaluate(() => {
        const table = document.querySelector('table.entries')!;
        const width = table.getBoundingClientRect().width;
        const heads = [...table.querySelectorAll('thead th')].map((th) => th.getBoundingClientRect().width / width);
        const cells = [...table.querySelectorAll('tbody tr')].map((tr) =>
          [...tr.querySelectorAll('td')].map((td) => td.textContent),
        );
        const overflow = [...table.querySelectorAll('td')].filter((td) => td.scrollWidth > td.clientWidth + 1).length;
        return { width, heads, cells, overflow, viewport: document.documentElement.clientWidth };
      });
      assert.ok(layout.width <= layout.viewport + 1, `the table fits the page: ${JSON.stringify(layout)}`);
      const share = (i: number) => layout.heads[i]!;
      assert.ok(share(9) <= 0.15, `the hash column takes ${Math.round(share(9) * 100)}% of the width`);
      for (const [i, name] of [
        [2, 'actor'],
        [3, 'action'],
        [4, 'target'],
        [8, 'legal basis'],
      ] as const)
        assert.ok(share(i) >= 0.08, `the ${name} column has ${Math.round(share(i) * 100)}% of the width`);
      assert.equal(layout.overflow, 0, 'no cell spills over its neighbour');
      assert.deepEqual(
        layout.cells.map((c) => c[9]),
        hashes,
        'every hash is there in full',
      );
    } finally {
      await browser.close();
    }
  });
});

describe('the DPO command line', () => {
  test('vigie --help lists every command of the command table with its example, and vigie <command> --help its options', async () => {
    const { stdout } = await cli(['--help']);
    assert.ok(COMMANDS.length >= 7);
    for (const c of COMMANDS) {
      for (const field of ['name', 'summary', 'usage', 'example'] as const)
        assert.ok(typeof c[field] === 'string' && c[field].length > 0, `${c.name ?? '?'} has no ${field}`);
      assert.ok(
        c.usage.startsWith(`vigie ${c.name}`) && c.example.startsWith(`vigie ${c.name}`),
        `${c.name}: usage and example run that command`,
      );
      assert.ok(
        stdout.includes(c.usage) && stdout.includes(`example: ${c.example}`) && stdout.includes(c.summary),
        `vigie --help lists ${c.name}`,
      );
      const own = await cli([...c.name.split(' '), '--help']);
      assert.ok(own.stdout.includes(`usage: ${c.usage}`) && own.stdout.includes(c.example), `vigie ${c.name} --help`);
      for (const option of Object.keys(c.options))
        assert.ok(
          own.stdout.includes(`--${option}`) && c.usage.includes(`--${option}`),
          `${c.name} documents --${option}`,
        );
    }
    const unknown = await cli(['nonsense']).catch((e) => e);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "nonsense"/);
    const badOption = await cli(['report', 'audit', '--bogus', 'x']).catch((e) => e);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /Unknown option '--bogus'[\s\S]*usage: vigie report audit/);
  });

  test('progress of an audit export and of a DSAR archive goes to stderr with --progress, and never into stdout', async () => {
    for (let i = 0; i < 40; i++)
      await gw.app.compliance!.audit.append({
        tenant: 'acme',
        actor: 'key:progress',
        action: 'recording.read',
        target: `recording:p${i}`,
      });
    const dir = tmp('vigie-progress-');
    const from = new Date(Date.now() - 3600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const out = path.join(dir, 'audit.jsonl');
    const { stdout, stderr } = await cli([
      'report',
      'audit',
      '--from',
      from,
      '--to',
      to,
      '--format',
      'jsonl',
      '--out',
      out,
      '--progress',
    ]);
    const entries = readFileSync(out, 'utf8').trim().split('\n').length;
    assert.ok(entries >= 40);
    assert.equal(JSON.parse(stdout).file, out, 'stdout holds the result only');
    assert.match(stderr, /^vigie: report audit: the gateway is writing the export…$/m);
    assert.match(stderr, new RegExp(`^vigie: report audit: ${entries} entries written$`, 'm'));
    assert.match(
      stderr,
      new RegExp(`^vigie: report audit: ${entries} of ${entries} entries \\(100%\\), [\\d.]+ of [\\d.]+ MB$`, 'm'),
    );

    const quiet = await cli(['report', 'audit', '--from', from, '--to', to, '--out', path.join(dir, 'quiet.jsonl')]);
    assert.equal(quiet.stderr, '', 'no progress when stderr is not a terminal and --progress is not given');

    const tar = path.join(dir, 'dsar.tar');
    const dsar = await cli(['dsar', 'export', '--identity', 'nobody@example.fr', '--out', tar, '--progress']);
    const files = (await run('tar', ['-tf', tar])).stdout.split('\n').filter((f) => f && !f.endsWith('/')).length;
    assert.equal(JSON.parse(dsar.stdout).file, tar);
    assert.match(
      dsar.stderr,
      new RegExp(`^vigie: dsar export: ${files} of ${files} files \\(100%\\), [\\d.]+ of [\\d.]+ MB$`, 'm'),
      dsar.stderr,
    );
    // On a terminal (a pseudo-terminal from util-linux's script), progress shows without --progress, rewritten in place.
    const onTty = await run(
      'script',
      [
        '-qec',
        `${process.execPath} bin/vigie.mjs dsar export --identity nobody@example.fr --out ${path.join(dir, 'tty.tar')}`,
        '/dev/null',
      ],
      { env: { ...process.env, VIGIE_URL: gw.url, VIGIE_API_KEY: DPO_KEY.key } },
    );
    assert.ok(
      onTty.stdout.includes(`\r\x1b[2Kvigie: dsar export: ${files} of ${files} files (100%)`),
      JSON.stringify(onTty.stdout),
    );
    const verified = await cli(['verify', tar]);
    assert.equal(JSON.parse(verified.stdout).ok, true, 'the archive verifies with vigie verify');
  });
});
