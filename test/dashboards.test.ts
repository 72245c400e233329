/**
 * Grafana dashboards (dashboards/): the committed JSON is what the TypeScript
 * generates, it validates against the JSON Schema generated from the SDK's
 * types, and every query (panels, variables, annotations), with the
 * ClickHouse plugin's macros and Grafana's variables expanded, runs on a real
 * ClickHouse engine over seeded rows and returns the columns its panel reads.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, test } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { CLICKHOUSE_DS_TYPE, CLICKHOUSE_DS_UID, Format, type QueryExpectation } from '../dashboards/lib/clickhouse.js';
import { expandMacros, expandQuery, interpolateVariables, type ExpansionContext } from '../dashboards/lib/macros.js';
import { seed, type SeededCall } from '../dashboards/lib/seed.js';
import { generateDashboardSchema, SCHEMA_FILE } from '../dashboards/generate-schema.js';
import { buildDashboards, serialize } from '../dashboards/src/index.js';
import { DRILLDOWN_UID } from '../dashboards/src/call-drilldown.js';
import { startGateway, type TestGateway } from './helpers/gateway.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const jsonDir = path.join(root, 'dashboards/json');
const built = buildDashboards();
const committed = new Map(
  readdirSync(jsonDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => [f, readFileSync(path.join(jsonDir, f), 'utf8')]),
);
const dashboards = [...committed.values()].map(
  (text) => JSON.parse(text) as Dashboard & { uid: string; title: string },
);

interface Target {
  refId: string;
  datasource: { type: string; uid: string };
  editorType: string;
  rawSql: string;
  format: number;
  queryType: string;
}
interface PanelJson {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  fieldConfig?: { overrides?: Array<{ properties: Array<{ id: string; value: unknown }> }> };
}
interface VariableJson {
  name: string;
  multi?: boolean;
  includeAll?: boolean;
  query: { rawSql: string };
}

/** Every query of a dashboard JSON, with where it sits. */
function queriesOf(d: Dashboard): Array<{
  kind: QueryExpectation['kind'];
  name: string;
  refId: string;
  sql: string;
  format: number;
  target?: Target;
}> {
  const out: ReturnType<typeof queriesOf> = [];
  for (const p of (d.panels ?? []) as unknown as PanelJson[]) {
    for (const t of p.targets ?? [])
      out.push({ kind: 'panel', name: p.title, refId: t.refId, sql: t.rawSql, format: t.format, target: t });
  }
  for (const v of (d.templating.list ?? []) as unknown as VariableJson[])
    out.push({ kind: 'variable', name: v.name, refId: v.name, sql: v.query.rawSql, format: Format.Table });
  for (const a of (d.annotations.list ?? []) as unknown as Array<{ name: string; target: Target }>) {
    out.push({
      kind: 'annotation',
      name: a.name,
      refId: a.target.refId,
      sql: a.target.rawSql,
      format: a.target.format,
      target: a.target,
    });
  }
  return out;
}

describe('dashboards: the generated JSON', () => {
  test('the committed JSON is what `npm run dashboards` generates', () => {
    assert.deepEqual(
      [...committed.keys()].sort(),
      built.map((b) => b.file).sort(),
      'dashboards/json holds exactly the generated files',
    );
    for (const b of built)
      assert.ok(
        committed.get(b.file) === serialize(b.dashboard),
        `dashboards/json/${b.file} is out of date: run npm run dashboards`,
      );
  });

  test('the committed JSON Schema is what the installed SDK types give', () => {
    assert.ok(
      readFileSync(SCHEMA_FILE, 'utf8') === generateDashboardSchema(),
      'dashboards/schema/dashboard.schema.json is out of date: run npm run dashboards:schema',
    );
  });

  test('every dashboard validates against the JSON Schema generated from the SDK types', () => {
    const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8'));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    for (const d of dashboards)
      assert.ok(validate(d), `${d.uid}: ${JSON.stringify(validate.errors?.slice(0, 5), null, 1)}`);

    // The schema has teeth: each of these breaks it.
    const broken: Array<[string, (d: any) => void]> = [
      ['a target without SQL', (d) => delete d.panels.find((p: PanelJson) => p.targets).targets[0].rawSql],
      ['an unknown format', (d) => (d.panels.find((p: PanelJson) => p.targets).targets[0].format = 7)],
      [
        'another datasource type',
        (d) => (d.panels.find((p: PanelJson) => p.targets).targets[0].datasource.type = 'prometheus'),
      ],
      ['an unknown panel type', (d) => (d.panels.find((p: PanelJson) => p.targets).type = 'graph')],
      ['a misspelt panel option', (d) => (d.panels.find((p: PanelJson) => p.type === 'timeseries').options.legnd = {})],
      ['a panel without its grid position', (d) => (d.panels.find((p: PanelJson) => p.targets).gridPos = { w: 4 })],
      ['a dashboard without a uid', (d) => delete d.uid],
    ];
    for (const [what, breakIt] of broken) {
      const copy = structuredClone(dashboards.find((d) => d.uid === DRILLDOWN_UID)!);
      breakIt(copy);
      assert.equal(validate(copy), false, `the schema accepts ${what}`);
    }
  });

  test('panels fit the 24-column grid without overlapping', () => {
    for (const d of dashboards) {
      const boxes = (
        (d.panels ?? []) as unknown as Array<{ title: string; gridPos: { x: number; y: number; w: number; h: number } }>
      ).map((p) => ({ title: p.title, ...p.gridPos }));
      for (const b of boxes)
        assert.ok(b.x >= 0 && b.w > 0 && b.x + b.w <= 24, `${d.uid}: ${b.title} overflows the grid`);
      for (const a of boxes) {
        for (const b of boxes) {
          if (a === b) continue;
          const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
          assert.ok(!overlap, `${d.uid}: ${a.title} overlaps ${b.title}`);
        }
      }
    }
  });

  test('every query uses the ClickHouse plugin query model and is catalogued with the columns it returns', () => {
    const uids = new Set<string>();
    for (const d of dashboards) {
      assert.ok(!uids.has(d.uid), `duplicate uid ${d.uid}`);
      uids.add(d.uid);
      const expectations = built.find((b) => b.dashboard.uid === d.uid)!.expectations;
      const queries = queriesOf(d);
      assert.equal(queries.length, expectations.length, `${d.uid}: every query has an expectation and vice versa`);
      const ids = new Set<number>();
      for (const p of (d.panels ?? []) as unknown as PanelJson[]) {
        assert.ok(!ids.has(p.id), `${d.uid}: panel id ${p.id} used twice`);
        ids.add(p.id);
      }
      for (const q of queries) {
        assert.ok(
          expectations.some((e) => e.kind === q.kind && e.name === q.name && e.refId === q.refId),
          `${d.uid}: ${q.kind} "${q.name}" ${q.refId} has no expectation`,
        );
        if (!q.target) continue;
        assert.deepEqual(q.target.datasource, { type: CLICKHOUSE_DS_TYPE, uid: CLICKHOUSE_DS_UID });
        assert.equal(q.target.editorType, 'sql');
        assert.ok([Format.TimeSeries, Format.Table, Format.Logs].includes(q.target.format));
        assert.equal(q.target.queryType, { 0: 'timeseries', 1: 'table', 2: 'logs' }[q.target.format]);
      }
    }
    assert.equal(dashboards.length, 4);
  });

  test('Grafana never reads a clear identity: no query touches the participants table', () => {
    for (const d of dashboards)
      for (const q of queriesOf(d))
        assert.doesNotMatch(q.sql, /\b(FROM|JOIN)\s+(\w+\.)?participants\b/i, `${d.uid}: ${q.name}`);
  });

  test('the worst-calls table links each call to the drill-down, with variables the drill-down has', () => {
    const overview = dashboards.find((d) => d.uid === 'vigie-call-quality')!;
    const table = (overview.panels as unknown as PanelJson[]).find(
      (p) => p.title === 'Worst calls' && p.type === 'table',
    )!;
    const links = table
      .fieldConfig!.overrides!.flatMap((o) => o.properties)
      .filter((p) => p.id === 'links')
      .flatMap((p) => p.value as Array<{ url: string }>);
    assert.equal(links.length, 1);
    const url = new URL(links[0]!.url, 'http://grafana.invalid');
    assert.equal(url.pathname, `/d/${DRILLDOWN_UID}`);
    const drill = dashboards.find((d) => d.uid === DRILLDOWN_UID)!;
    const names = new Set((drill.templating.list ?? []).map((v) => v.name));
    for (const key of url.searchParams.keys())
      if (key.startsWith('var-')) assert.ok(names.has(key.slice(4)), `drill-down has no variable ${key.slice(4)}`);
    assert.equal(url.searchParams.get('var-call'), '${__data.fields.call_id}');
  });

  test('macros and variables expand as Grafana and the ClickHouse plugin expand them', () => {
    const ctx = { from: new Date(1_700_000_000_123), to: new Date(1_700_003_600_456), intervalMs: 30_000 };
    // The plugin's own cases (pkg/macros/macros_test.go): seconds for DateTime, milliseconds for _ms.
    assert.equal(
      expandMacros('$__timeFilter(ts)', ctx),
      'ts >= toDateTime(1700000000) AND ts <= toDateTime(1700003600)',
    );
    assert.equal(
      expandMacros('$__timeFilter_ms(ts)', ctx),
      'ts >= fromUnixTimestamp64Milli(1700000000123) AND ts <= fromUnixTimestamp64Milli(1700003600456)',
    );
    assert.equal(expandMacros('$__timeInterval(ts)', ctx), 'toStartOfInterval(toDateTime(ts), INTERVAL 30 second)');
    assert.equal(
      expandMacros('$__timeInterval_ms(ts)', ctx),
      'toStartOfInterval(toDateTime64(ts, 3), INTERVAL 30000 millisecond)',
    );
    assert.equal(expandMacros('$__fromTime AND $__toTime', ctx), 'toDateTime(1700000000) AND toDateTime(1700003600)');
    assert.equal(expandMacros('$__interval_s', { ...ctx, intervalMs: 200 }), '1');
    assert.equal(expandMacros('$__dateFilter(d)', ctx), "d >= toDate('2023-11-14') AND d <= toDate('2023-11-14')");
    assert.throws(() => expandMacros('$__timeFilter(toDateTime(ts))', ctx), /parentheses/);
    assert.throws(() => expandMacros('$__timeFiltr(ts)', ctx), /unknown macro/);
    // Grafana's variable formats.
    const vars = { tenant: ['acme', "o'hara"], call: 'c1' };
    assert.equal(
      interpolateVariables('IN (${tenant:sqlstring}) AND c = ${call:sqlstring} AND $call', vars),
      "IN ('acme','o''hara') AND c = 'c1' AND c1",
    );
    assert.equal(interpolateVariables('$__timeFilter(ts) ${__from}', vars), '$__timeFilter(ts) ${__from}');
    assert.throws(() => interpolateVariables('${room}', vars), /unknown template variable/);
  });
});

describe('dashboards: every query on ClickHouse over seeded rows', () => {
  let gw: TestGateway;
  let calls: SeededCall[];
  const now = Date.now();
  const range = { from: new Date(now - 6 * 3_600_000), to: new Date(now + 60_000), intervalMs: 60_000 };

  const exec = async (sql: string): Promise<{ names: string[]; types: string[]; rows: unknown[][] }> => {
    const rs = await gw.app.clickhouse.client.query({ query: sql, format: 'JSONCompactEachRowWithNamesAndTypes' });
    const lines = (await rs.text())
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as unknown[]);
    return { names: lines[0] as string[], types: lines[1] as string[], rows: lines.slice(2) };
  };
  const runFile = async (file: string) => {
    const text = readFileSync(path.join(root, file), 'utf8').replace(/^\s*--.*$/gm, '');
    for (const statement of text
      .split(/;\s*$/m)
      .map((s) => s.trim())
      .filter(Boolean))
      await gw.app.clickhouse.client.command({ query: statement });
  };

  beforeAll(async () => {
    gw = await startGateway();
    const db = gw.config.clickhouse.database;
    await runFile('dashboards/otel-metrics-tables.sql');
    const writer = gw.app.telemetry!.writer;
    calls = await seed(
      {
        write: (table, row) => writer.write(table, row),
        insert: async (table, rows) => {
          await gw.app.clickhouse.client.insert({
            table: table.includes('.') ? table : `${db}.${table}`,
            values: rows,
            format: 'JSONEachRow',
          });
        },
      },
      now,
    );
    await writer.flush();
    // Grafana's datasource connects with defaultDatabase = CLICKHOUSE_DATABASE; panels name Vigie's tables unqualified.
    await gw.app.clickhouse.client.command({ query: `USE ${db}` });
  });

  afterAll(async () => {
    await gw?.close();
  });

  test('dashboards/future-tables.sql states columns that the migrated tables have, with the same types', async () => {
    const db = gw.config.clickhouse.database;
    await gw.app.clickhouse.client.command({ query: 'CREATE DATABASE IF NOT EXISTS dashboards_contract' });
    await gw.app.clickhouse.client.command({ query: 'USE dashboards_contract' });
    try {
      await runFile('dashboards/future-tables.sql');
    } finally {
      await gw.app.clickhouse.client.command({ query: `USE ${db}` });
    }
    const columns = async (database: string) =>
      new Map(
        (
          await exec(`SELECT concat(table, '.', name), type FROM system.columns WHERE database = '${database}'`)
        ).rows.map(([k, t]) => [k as string, t as string]),
      );
    const contract = await columns('dashboards_contract');
    const real = await columns(db);
    assert.ok(contract.size >= 30);
    for (const [column, type] of contract) assert.equal(real.get(column), type, `${db}.${column}`);
    // The issue's list, for the two tables it named first.
    for (const c of [
      'recordings.id',
      'recordings.started_at',
      'recordings.size_bytes',
      'recordings.legal_hold',
      'recordings.deletion_reason',
      'audit_log.seq',
      'dsar_requests.kind',
      'retention_deletions.version_id',
    ]) {
      assert.ok(contract.has(c), c);
    }
  });

  for (const b of built) {
    describe(`${b.dashboard.title}: every query returns its panel's columns and rows`, () => {
      const d = dashboards.find((x) => x.uid === b.dashboard.uid)!;
      const vars: ExpansionContext['vars'] = {};
      // Variables resolve as Grafana resolves them: in order, each from its query; multi-value ones select all.
      // The panels' tests below run after this one (vitest runs a file's tests in order) and use what it resolved.
      test('its variables resolve to options', async () => {
        for (const v of (d.templating.list ?? []) as unknown as VariableJson[]) {
          const res = await exec(expandQuery(v.query.rawSql, { ...range, vars }));
          assert.ok(res.rows.length > 0, `variable ${v.name} has no options`);
          const values = res.rows.map((r) => String(r[0]));
          vars[v.name] = v.multi || v.includeAll ? values : values[0]!;
        }
        if (b.dashboard.uid === DRILLDOWN_UID)
          assert.ok(
            calls.some((c) => c.callId === vars.call),
            'the call variable lists a seeded call',
          );
      });

      for (const q of queriesOf(d)) {
        const e = b.expectations.find((x) => x.kind === q.kind && x.name === q.name && x.refId === q.refId)!;
        test(`${q.kind} ${q.name}`, async () => {
          const sql = expandQuery(q.sql, { ...range, vars });
          let res: Awaited<ReturnType<typeof exec>>;
          try {
            res = await exec(sql);
          } catch (err) {
            throw new Error(`${(err as Error).message}\n--- SQL ---\n${sql}`);
          }
          for (const c of e.columns)
            assert.ok(res.names.includes(c), `column ${c} missing: got ${res.names.join(', ')}`);
          assert.ok(res.rows.length > 0, `no rows\n--- SQL ---\n${sql}`);
          const typeOf = (c: string) => res.types[res.names.indexOf(c)]!;
          if (q.format === Format.TimeSeries || q.kind === 'annotation') {
            assert.equal(res.names[0], 'time');
            assert.match(typeOf('time'), /^(Nullable\()?DateTime(64)?\b/, 'time is a DateTime');
          }
          if (q.format === Format.TimeSeries) {
            // Long format: string labels and numeric values; the plugin pivots the labels into series.
            for (const c of res.names.slice(1))
              assert.match(
                typeOf(c),
                /^(Nullable\()?(LowCardinality\()?(U?Int|Float|Decimal|String)/,
                `${c}: ${typeOf(c)}`,
              );
            assert.ok(
              res.names.slice(1).some((c) => /Int|Float|Decimal/.test(typeOf(c))),
              'a numeric value column',
            );
            const times = res.rows.map((r) => String(r[0]));
            assert.deepEqual(times, [...times].sort(), 'rows ordered by time');
          }
        });
      }
    });
  }

  test('the numbers mean what the panels say', async () => {
    const q = async (dashboardUid: string, panel: string, vars: ExpansionContext['vars']) => {
      const d = dashboards.find((x) => x.uid === dashboardUid)!;
      const target = queriesOf(d).find((x) => x.name === panel)!;
      const res = await exec(expandQuery(target.sql, { ...range, vars }));
      return res.rows.map((r) => Object.fromEntries(res.names.map((n, i) => [n, r[i]])));
    };
    const all = { tenant: ['acme', 'globex'] };
    assert.equal(Number((await q('vigie-call-quality', 'Calls', all))[0]!.calls), 3);
    assert.equal(Number((await q('vigie-call-quality', 'Participants', all))[0]!.participants), 7);
    const worst = await q('vigie-call-quality', 'Worst calls', all);
    assert.equal(worst.length, 3);
    assert.equal(worst[0]!.call_room, 'intake', 'the lossy call comes first');
    assert.ok(Number(worst[0]!.worst_mos_p05) < 3.1 && Number(worst[2]!.worst_mos_p05) > 4, JSON.stringify(worst));
    const joins = await q('vigie-call-quality', 'Join funnel per tenant', all);
    assert.deepEqual(
      joins.map((j) => [j.tenant, Number(j.joins), Number(j.refused_or_failed)]),
      [
        ['acme', 6, 1],
        ['globex', 2, 0],
      ],
      'one row per join; the refused one counted, and left out of the percentiles',
    );
    for (const j of joins) assert.ok(Number(j.first_frame_p50) > Number(j.joined_p50) && j.first_frame_p95 !== null);
    const mix = await q('vigie-sfu', 'Transport mix (period)', { service: 'vigie-gateway' });
    assert.deepEqual(Object.fromEntries(mix.map((r) => [r.path, Number(r.transports)])), { relay: 4, tcp: 4, udp: 6 });
    const cpu = await q('vigie-sfu', 'Worker CPU', { service: 'vigie-gateway' });
    assert.ok(
      cpu.every((r) => Number(r.cpu_pct) > 0 && Number(r.cpu_pct) < 100),
      'worker CPU is a share of one core',
    );
    const holds = await q('vigie-compliance', 'Legal holds', all);
    assert.equal(Number(holds[0]!.legal_holds), 1);
    const open = await q('vigie-compliance', 'Open requests', all);
    assert.deepEqual([Number(open[0]!.open_requests), Number(open[0]!.overdue_30d)], [2, 1]);
    const gaps = await q('vigie-compliance', 'Audit sequence gaps', all);
    assert.equal(Number(gaps[0]!.seq_gaps), 0);
    // Each seeded call has one uplink issue of its second participant, seen by the others: a region from its
    // quality.issue to its quality.resolved event, on the timeline of whose network it was and of who suffered.
    const call = calls.find((c) => c.participants.length === 3)!;
    const [first, second, third] = call.participants;
    const issues = (participant: string[]) =>
      q(DRILLDOWN_UID, 'Quality issues', { tenant: call.tenant, call: call.callId, participant });
    const region = await issues([second!]);
    assert.equal(region.length, 1, JSON.stringify(region));
    assert.equal(
      Date.parse(`${region[0]!.timeEnd}Z`.replace(' ', 'T')) - Date.parse(`${region[0]!.time}Z`.replace(' ', 'T')),
      75_000,
      'start to end',
    );
    assert.equal(region[0]!.tags, 'uplink_loss');
    assert.match(
      String(region[0]!.text),
      new RegExp(`^uplink loss on the uplink of ${second!.slice(0, 8)} \\(video\\)`),
    );
    assert.match(String(region[0]!.text), /affected: 2 · recovered$/);
    assert.equal((await issues([third!])).length, 1, 'shown to who suffered from it');
    assert.equal((await issues([first!, third!])).length, 1, 'once');
    const other = calls.find((c) => c.callId !== call.callId)!;
    const elsewhere = await q(DRILLDOWN_UID, 'Quality issues', {
      tenant: other.tenant,
      call: other.callId,
      participant: [other.participants[0]!],
    });
    assert.ok(
      elsewhere.every((r) => !String(r.text).includes(second!.slice(0, 8))),
      "another call's regions are its own",
    );
  });
});
