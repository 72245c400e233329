/**
 * docker-compose.yml, checked statically (no Docker engine here): pinned
 * images, known variables only, .env.example in step with the settings, no
 * host port clashes, a healthcheck on every service, named volumes, and the
 * Grafana, ClickHouse and collector configuration agreeing with each other
 * and with the dashboards.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'vitest';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadConfig, SETTINGS } from '../src/config/index.js';
import { CLICKHOUSE_DS_TYPE, CLICKHOUSE_DS_UID, OTEL_DB } from '../dashboards/lib/clickhouse.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

const composeText = read('docker-compose.yml');
// Merge keys (`<<: *vigie-node`): both gateway nodes share one definition, as docker compose reads it.
const compose = parseYaml(composeText, { merge: true }) as {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
};
interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  ports?: Array<string | { target: number; published?: string | number; protocol?: string; host_ip?: string }>;
  volumes?: Array<string | { type: string; source?: string; target: string; read_only?: boolean }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  depends_on?: Record<string, { condition: string }> | string[];
  command?: string[] | string;
  entrypoint?: string[] | string;
}
const services = compose.services;

const SETTING_ENVS = new Set(SETTINGS.map((s) => s.env));
/** Standard OpenTelemetry SDK variables (the specification's environment variables). */
const OTEL_STANDARD = new Set([
  'OTEL_SDK_DISABLED',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_LOG_LEVEL',
  'OTEL_PROPAGATORS',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_TRACES_EXPORTER',
  'OTEL_METRICS_EXPORTER',
  'OTEL_LOGS_EXPORTER',
  'OTEL_METRIC_EXPORT_INTERVAL',
  'OTEL_METRIC_EXPORT_TIMEOUT',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TIMEOUT',
  'OTEL_EXPORTER_OTLP_COMPRESSION',
  'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE',
]);

/** The compose-only variables the operators' guide documents (its marked table). */
const docs = read('docs/operators.md');
const composeOnly = new Set(
  [
    ...docs
      .slice(docs.indexOf('<!-- compose-only-vars:start -->'), docs.indexOf('<!-- compose-only-vars:end -->'))
      .matchAll(/^\| `([A-Z0-9_]+)` \|/gm),
  ].map((m) => m[1]!),
);

/** .env.example as key → value. */
const envExample = new Map(
  read('.env.example')
    .split('\n')
    .filter((l) => /^[A-Z0-9_]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]),
);

/** Every `${VAR…}` compose interpolates, with its form. */
const interpolations = [
  ...composeText.replace(/\$\$/g, '').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g),
].map((m) => ({ name: m[1]!, op: m[2] ?? '', arg: m[3] ?? '' }));

/** Compose's interpolation, from a map of variables. */
function interpolate(value: string, vars: Map<string, string>): string {
  return value.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}/g,
    (_w, name: string, op: string | undefined, arg: string) => {
      const v = vars.get(name);
      if (op === ':-') return v ? v : arg;
      if (op === '-') return v ?? arg;
      if (op === ':?' && !v) throw new Error(`required variable ${name} is empty: ${arg}`);
      if (op === '?' && v === undefined) throw new Error(`required variable ${name} is unset: ${arg}`);
      return v ?? '';
    },
  );
}

function environmentOf(s: Service): Record<string, string> {
  if (!s.environment) return {};
  if (Array.isArray(s.environment))
    return Object.fromEntries(s.environment.map((kv) => [kv.split('=')[0]!, kv.split('=').slice(1).join('=')]));
  return Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** The FROM images of a Dockerfile (build stages named with AS are not images). */
function dockerfileImages(file: string): string[] {
  const stages = new Set<string>();
  const images: string[] = [];
  for (const line of read(file).split('\n')) {
    const m = /^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line.trim());
    if (!m) continue;
    if (!stages.has(m[1]!.toLowerCase())) images.push(m[1]!);
    if (m[2]) stages.add(m[2].toLowerCase());
  }
  return images;
}

/** An image reference pinned to a version: a tag with a digit in it (or a digest), never latest. */
function assertPinned(ref: string, where: string) {
  if (ref.includes('@sha256:')) return;
  const lastSlash = ref.lastIndexOf('/');
  const colon = ref.indexOf(':', lastSlash + 1);
  assert.ok(colon > 0, `${where}: ${ref} has no tag`);
  const tag = ref.slice(colon + 1);
  assert.notEqual(tag, 'latest', `${where}: ${ref} uses latest`);
  assert.match(tag, /\d/, `${where}: ${ref} is not pinned to a version`);
  assert.doesNotMatch(tag, /^\d+(-[a-z]+)?$/, `${where}: ${ref} names a major version only`);
}

function buildOf(s: Service): { context: string; dockerfile: string } | undefined {
  if (!s.build) return undefined;
  if (typeof s.build === 'string') return { context: s.build, dockerfile: 'Dockerfile' };
  return { context: s.build.context, dockerfile: s.build.dockerfile ?? 'Dockerfile' };
}

describe('docker-compose.yml', () => {
  test('has the services of the stack', () => {
    assert.deepEqual(Object.keys(services).sort(), [
      'clickhouse',
      'coturn',
      'grafana',
      'minio',
      'minio-init',
      'otel-collector',
      'postgres',
      'vigie',
      'vigie-2',
    ]);
    assert.match(services.postgres!.image!, /^postgres:\d+\.\d+/, 'PostgreSQL, pinned');
    assert.match(services.clickhouse!.image!, /^clickhouse\/clickhouse-server:25\.\d+\.\d+/, 'ClickHouse 25.x');
    assert.match(services.minio!.image!, /^minio\/minio:/);
    assert.match(services['minio-init']!.image!, /^minio\/mc:/);
    assert.match(services.grafana!.image!, /^grafana\/grafana:/);
    assert.match(services.coturn!.image!, /^coturn\/coturn:/);
    assert.deepEqual(dockerfileImages('Dockerfile'), ['node:20.20.2-bookworm', 'node:20.20.2-bookworm']);
    assert.ok(
      dockerfileImages('deploy/otel-collector/Dockerfile').some((i) =>
        i.startsWith('otel/opentelemetry-collector-contrib:'),
      ),
    );
    assert.match(read('Dockerfile'), /bash scripts\/setup\.sh runtime/);
    assert.match(read('Dockerfile'), /npm ci/);
    assert.match(read('Dockerfile'), /CMD \["node", "--enable-source-maps", "dist\/server\/main\.js"\]/);
  });

  test('every image is pinned to a version, including the base images of what compose builds', () => {
    for (const [name, s] of Object.entries(services)) {
      const build = buildOf(s);
      assert.ok(s.image || build, `${name}: neither image nor build`);
      if (s.image) assertPinned(s.image, name);
      if (build)
        for (const from of dockerfileImages(path.join(build.context, build.dockerfile)))
          assertPinned(from, `${name} (${build.dockerfile})`);
    }
    // The Grafana plugin too.
    assert.match(environmentOf(services.grafana!).GF_INSTALL_PLUGINS!, /^grafana-clickhouse-datasource \d+\.\d+\.\d+$/);
  });

  test('two gateway nodes on one PostgreSQL: distinct ids, URLs, media ports and data volumes', () => {
    const nodes = [services.vigie!, services['vigie-2']!];
    const envs = nodes.map(environmentOf);
    assert.notEqual(envs[0]!.VIGIE_NODE_ID, envs[1]!.VIGIE_NODE_ID, 'distinct VIGIE_NODE_ID');
    assert.ok(
      envs.every((e) => e.VIGIE_NODE_ID),
      'each node names itself',
    );
    assert.notEqual(envs[0]!.VIGIE_PUBLIC_URL, envs[1]!.VIGIE_PUBLIC_URL, "each node's own URL");
    assert.notEqual(envs[0]!.VIGIE_MEDIA_WEBRTC_SERVER_PORT, envs[1]!.VIGIE_MEDIA_WEBRTC_SERVER_PORT);
    for (const [i, s] of nodes.entries()) {
      const url = new URL(envs[i]!.VIGIE_DATABASE_URL!.replace(/\$\{[^}]*\}/g, 'x'));
      assert.equal(url.hostname, 'postgres', 'the control plane is the postgres service');
      assert.equal(url.pathname, `/${environmentOf(services.postgres!).POSTGRES_DB}`);
      assert.equal(url.username, environmentOf(services.postgres!).POSTGRES_USER);
      assert.equal(envs[i]!.VIGIE_DATABASE_URL, envs[0]!.VIGIE_DATABASE_URL, 'both nodes on the same database');
      assert.equal((s.depends_on as Record<string, { condition: string }>).postgres?.condition, 'service_healthy');
    }
    const dataVolumes = nodes.map((s) => (s.volumes as string[]).find((v) => v.endsWith(':/var/lib/vigie')));
    assert.ok(dataVolumes[0] && dataVolumes[1] && dataVolumes[0] !== dataVolumes[1], 'a data dir per node');
  });

  test('the vigie service uses only gateway settings and standard OTEL_* variables', () => {
    for (const key of Object.keys(environmentOf(services.vigie!))) {
      assert.ok(
        SETTING_ENVS.has(key) || OTEL_STANDARD.has(key),
        `vigie: ${key} is neither a setting (src/config/settings.ts) nor a standard OTEL_* variable`,
      );
    }
  });

  test('every VIGIE_*/CLICKHOUSE_* name in the file is a setting; every interpolated variable is a setting or a documented compose-only variable', () => {
    for (const m of composeText.matchAll(/\b((?:VIGIE|CLICKHOUSE)_[A-Z0-9_]+)\b/g))
      assert.ok(SETTING_ENVS.has(m[1]!), `${m[1]} is not a setting`);
    assert.ok(composeOnly.size >= 5, 'docs/operators.md lists the compose-only variables');
    for (const v of composeOnly) {
      assert.ok(
        !SETTING_ENVS.has(v) && !v.startsWith('VIGIE_') && !v.startsWith('CLICKHOUSE_') && !v.startsWith('OTEL_'),
        `${v}: a compose-only variable must not look like a setting`,
      );
      assert.ok(
        interpolations.some((i) => i.name === v),
        `${v} is documented as compose-only but compose does not use it`,
      );
    }
    for (const i of interpolations)
      assert.ok(
        SETTING_ENVS.has(i.name) || composeOnly.has(i.name),
        `\${${i.name}} is neither a setting nor documented in docs/operators.md`,
      );
  });

  test('.env.example: known keys only, every required variable present, none unused', () => {
    for (const key of envExample.keys())
      assert.ok(
        SETTING_ENVS.has(key) || composeOnly.has(key),
        `.env.example: ${key} is neither a setting nor a documented compose-only variable`,
      );
    for (const i of interpolations.filter((x) => x.op.includes('?')))
      assert.ok(envExample.has(i.name), `.env.example lacks the required ${i.name}`);
    for (const key of envExample.keys())
      assert.ok(
        interpolations.some((i) => i.name === key),
        `.env.example: ${key} is not used by docker-compose.yml`,
      );
    // Secrets are left for the operator to generate: none ships with a value.
    for (const [key, value] of envExample)
      if (/SECRET|PASSWORD|HASH/.test(key)) assert.equal(value, '', `${key} must be empty in .env.example`);
    // As shipped, .env.example is incomplete on purpose: compose refuses to start until the secrets are set.
    assert.throws(() => interpolate(composeText, envExample), /required variable/);
  });

  test('the gateway accepts the configuration compose gives it', () => {
    // .env.example with its secrets filled in, as an operator would.
    const filled = new Map(envExample);
    for (const [key, value] of filled)
      if (value === '' && interpolations.some((i) => i.name === key && i.op.includes('?')))
        filled.set(
          key,
          key === 'MINIO_KMS_SECRET_KEY'
            ? `${filled.get('VIGIE_S3_KMS_KEY_ID')}:${Buffer.alloc(32, 7).toString('base64')}`
            : `${key.toLowerCase()}-0123456789abcdef0123456789abcdef`,
        );
    filled.set('VIGIE_CONFIG_FILE', '/etc/vigie/config.example.yaml');
    const envOf = (service: string) =>
      Object.fromEntries(
        Object.entries(environmentOf(services[service]!)).map(([k, v]) => [k, interpolate(v, filled)]),
      );
    const node2 = envOf('vigie-2');
    node2.VIGIE_CONFIG_FILE = node2.VIGIE_CONFIG_FILE!.replace('/etc/vigie', path.join(root, 'deploy/vigie'));
    const config2 = loadConfig(node2);
    assert.equal(config2.node.id, 'vigie-2');
    assert.match(config2.database.url ?? '', /^postgres:\/\/vigie:.+@postgres:5432\/vigie$/);
    for (let i = 0; i < config2.media.workers; i++)
      assert.ok(
        publishedPorts().some((p) => p.service === 'vigie-2' && p.port === config2.media.webRtcServerPort + i),
        `node 2, worker ${i}: port not published`,
      );
    const env = envOf('vigie');
    // The config file as mounted (./deploy/vigie → /etc/vigie).
    env.VIGIE_CONFIG_FILE = env.VIGIE_CONFIG_FILE!.replace('/etc/vigie', path.join(root, 'deploy/vigie'));
    const config = loadConfig(env);
    assert.equal(config.clickhouse.url, 'http://clickhouse:8123');
    assert.equal(config.storage.driver, 's3');
    assert.equal(config.storage.sse, 'kms');
    assert.equal(config.media.webRtcServer, true);
    assert.equal(config.tenants[0]?.id, 'acme');
    // Every worker's WebRtcServer port is published, udp and tcp.
    for (let i = 0; i < config.media.workers; i++) {
      for (const proto of ['udp', 'tcp'])
        assert.ok(
          publishedPorts().some(
            (p) => p.service === 'vigie' && p.port === config.media.webRtcServerPort + i && p.proto === proto,
          ),
          `worker ${i}: ${proto} port not published`,
        );
    }
    // The OTLP endpoint is the collector's HTTP receiver, and metrics go out as deltas.
    assert.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
    assert.equal(env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, 'delta');
  });

  test('no two services publish the same host port', () => {
    const seen = new Map<string, string>();
    for (const p of publishedPorts()) {
      for (const ip of p.ip === '0.0.0.0' ? ['*'] : [p.ip, '*']) {
        const clash = [...seen.entries()].find(([k]) => {
          const [kIp, kPort, kProto] = k.split('|');
          return kPort === String(p.port) && kProto === p.proto && (kIp === ip || kIp === '*' || ip === '*');
        });
        assert.ok(!clash, `host port ${p.port}/${p.proto} published by ${p.service} and ${clash?.[1]}`);
      }
      seen.set(`${p.ip === '0.0.0.0' ? '*' : p.ip}|${p.port}|${p.proto}`, p.service);
    }
    assert.ok(seen.size >= 45, 'the port ranges are expanded');
  });

  test('every service has a healthcheck', () => {
    for (const [name, s] of Object.entries(services)) {
      assert.ok(s.healthcheck && !s.healthcheck.disable, `${name}: no healthcheck`);
      const t = s.healthcheck!.test;
      assert.ok(
        Array.isArray(t) ? t.length > 1 && t[0] !== 'NONE' : typeof t === 'string' && t.length > 0,
        `${name}: empty healthcheck test`,
      );
    }
    // Dependencies wait for health (or, for the one-shot job, for its successful end).
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, cond] of Object.entries((s.depends_on ?? {}) as Record<string, { condition: string }>)) {
        assert.ok(services[dep], `${name} depends on unknown ${dep}`);
        assert.equal(
          cond.condition,
          dep === 'minio-init' ? 'service_completed_successfully' : 'service_healthy',
          `${name} → ${dep}`,
        );
      }
    }
  });

  test('data lives in named volumes; bind mounts are read-only configuration from the repository', () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const used = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const [source, target, mode] =
          typeof v === 'string' ? v.split(':') : [v.source ?? '', v.target, v.read_only ? 'ro' : ''];
        assert.ok(source && target, `${name}: anonymous volume ${JSON.stringify(v)}`);
        if (source.startsWith('./') || source.startsWith('/')) {
          assert.ok(source.startsWith('./'), `${name}: bind mount from outside the repository: ${source}`);
          assert.equal(mode, 'ro', `${name}: bind mount ${source} must be read-only`);
          assert.ok(existsSync(path.join(root, source)), `${name}: ${source} does not exist`);
        } else {
          assert.ok(declared.has(source), `${name}: volume ${source} is not declared under volumes:`);
          used.add(source);
        }
      }
    }
    assert.deepEqual([...declared].sort(), [...used].sort(), 'every declared volume is used');
    for (const stateful of ['vigie', 'vigie-2', 'postgres', 'clickhouse', 'minio', 'grafana']) {
      assert.ok(
        (services[stateful]!.volumes ?? []).some((v) => typeof v === 'string' && !v.startsWith('.')),
        `${stateful} keeps its data in a named volume`,
      );
    }
  });
});

describe('the configuration compose mounts', () => {
  const grafanaEnv = environmentOf(services.grafana!);
  const clickhouseEnv = environmentOf(services.clickhouse!);
  const dashboardsJson = readdirSync(path.join(root, 'dashboards/json')).map(
    (f) =>
      JSON.parse(read(`dashboards/json/${f}`)) as {
        uid: string;
        panels: Array<{ targets?: Array<{ rawSql: string }> }>;
        templating: { list?: Array<{ query: { rawSql: string } }> };
        annotations: { list?: Array<{ target: { rawSql: string } }> };
      },
  );
  const allSql = dashboardsJson.flatMap((d) => [
    ...d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.rawSql)),
    ...(d.templating.list ?? []).map((v) => v.query.rawSql),
    ...(d.annotations.list ?? []).map((a) => a.target.rawSql),
  ]);

  test('Grafana: the provisioned datasource is the one the dashboards use, filled from the environment', () => {
    const ds = parseYaml(read('deploy/grafana/provisioning/datasources/clickhouse.yaml')) as {
      datasources: Array<{
        uid: string;
        type: string;
        jsonData: Record<string, unknown>;
        secureJsonData: Record<string, string>;
      }>;
    };
    const [source] = ds.datasources;
    assert.equal(source!.uid, CLICKHOUSE_DS_UID);
    assert.equal(source!.type, CLICKHOUSE_DS_TYPE);
    const text = read('deploy/grafana/provisioning/datasources/clickhouse.yaml').replace(/^\s*#.*$/gm, '');
    for (const m of text.matchAll(/\$\{?([A-Z_][A-Z0-9_]*)\}?/g))
      assert.ok(m[1]! in grafanaEnv, `grafana's environment lacks ${m[1]}`);
    assert.equal(grafanaEnv.DS_CLICKHOUSE_HOST, 'clickhouse');
    assert.equal(
      grafanaEnv.DS_CLICKHOUSE_DATABASE,
      environmentOf(services.vigie!).CLICKHOUSE_DATABASE,
      'Grafana reads the database the gateway writes',
    );
    assert.equal(grafanaEnv.DS_CLICKHOUSE_USER, 'grafana');
    // The dashboards provider reads the directory the generated JSON is mounted at.
    const provider = parseYaml(read('deploy/grafana/provisioning/dashboards/vigie.yaml')) as {
      providers: Array<{ options: { path: string } }>;
    };
    const mount = (services.grafana!.volumes as string[]).find((v) => v.startsWith('./dashboards/json:'))!;
    assert.equal(mount.split(':')[1], provider.providers[0]!.options.path);
  });

  test("ClickHouse: Grafana's user may read every table the dashboards query, and never the identities", () => {
    const xml = read('deploy/clickhouse/users.d/vigie-users.xml');
    const grafana = xml.slice(xml.indexOf('<grafana>'), xml.indexOf('</grafana>'));
    const granted = [...grafana.matchAll(/GRANT SELECT(?:\([^)]*\))? ON (\w+)\.(\w+|\*)/g)].map(
      (m) => `${m[1]}.${m[2]}`,
    );
    const db = environmentOf(services.vigie!).CLICKHOUSE_DATABASE!;
    const tables = new Set<string>();
    for (const sql of allSql) {
      for (const m of sql.matchAll(/\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)/gi))
        tables.add(m[1]!.includes('.') ? m[1]! : `${db}.${m[1]}`);
    }
    assert.ok(tables.size >= 12, [...tables].join(', '));
    for (const t of tables)
      assert.ok(granted.includes(t) || granted.includes(`${t.split('.')[0]}.*`), `grafana cannot read ${t}`);
    for (const secret of ['participants', 'access_log', 'webhook_attempts', 'audit_checkpoints'])
      assert.ok(
        !granted.includes(`${db}.${secret}`) && !granted.includes(`${db}.*`),
        `grafana must not read ${secret}`,
      );
    assert.match(grafana, /<readonly>|<profile>dashboards<\/profile>/);
    // Column grants leave out subjects, IP addresses and free-text details.
    const auditCols = /GRANT SELECT\(([^)]*)\) ON \w+\.audit_log/
      .exec(grafana)![1]!
      .split(',')
      .map((c) => c.trim());
    for (const c of ['subject', 'source_ip', 'details'])
      assert.ok(!auditCols.includes(c), `audit_log.${c} is granted to grafana`);
    // Passwords come from the clickhouse container's environment.
    for (const m of xml.matchAll(/from_env="([A-Z0-9_]+)"/g))
      assert.ok(m[1]! in clickhouseEnv, `clickhouse's environment lacks ${m[1]}`);
  });

  test('OpenTelemetry collector: OTLP in, ClickHouse out, into the database the dashboards read', () => {
    const cfg = parseYaml(read('deploy/otel-collector/config.yaml')) as {
      receivers: { otlp: { protocols: { http: { endpoint: string } } } };
      exporters: { clickhouse: { database: string; endpoint: string; username: string; password: string } };
      service: {
        pipelines: Record<string, { receivers: string[]; processors: string[]; exporters: string[] }>;
        extensions: string[];
      };
      extensions: { health_check: { endpoint: string } };
    };
    assert.equal(cfg.exporters.clickhouse.database, OTEL_DB);
    assert.match(cfg.exporters.clickhouse.endpoint, /^tcp:\/\/clickhouse:9000/);
    assert.match(
      read('deploy/clickhouse/users.d/vigie-users.xml'),
      new RegExp(`<${cfg.exporters.clickhouse.username}>`),
      'the exporter user exists in ClickHouse',
    );
    assert.ok(cfg.service.pipelines.metrics!.exporters.includes('clickhouse'));
    assert.ok(cfg.service.pipelines.metrics!.processors.includes('cumulativetodelta'));
    assert.ok(cfg.service.pipelines.traces!.exporters.includes('clickhouse'));
    assert.equal(
      cfg.receivers.otlp.protocols.http.endpoint.split(':').pop(),
      new URL(environmentOf(services.vigie!).OTEL_EXPORTER_OTLP_ENDPOINT!).port,
    );
    const otelEnv = environmentOf(services['otel-collector']!);
    for (const m of read('deploy/otel-collector/config.yaml').matchAll(/\$\{env:([A-Z0-9_]+)\}/g))
      assert.ok(m[1]! in otelEnv, `otel-collector's environment lacks ${m[1]}`);
    // The healthcheck asks the health_check extension, on its port.
    assert.ok(cfg.service.extensions.includes('health_check'));
    const port = cfg.extensions.health_check.endpoint.split(':').pop();
    assert.ok((services['otel-collector']!.healthcheck!.test as string[]).some((a) => a.includes(`:${port}`)));
    // The SFU dashboard reads tables of the shape this exporter creates.
    for (const table of ['otel_metrics_gauge', 'otel_metrics_sum', 'otel_metrics_histogram'])
      assert.match(read('dashboards/otel-metrics-tables.sql'), new RegExp(`${OTEL_DB}\\.${table}\\b`));
  });

  test('MinIO: the init job gets every variable its script needs, and sets up Object Lock, versioning and SSE-KMS', () => {
    const script = read('deploy/minio/init.sh');
    const env = environmentOf(services['minio-init']!);
    for (const m of script.matchAll(/\$\{([A-Z0-9_]+):\?\}/g)) assert.ok(m[1]! in env, `minio-init lacks ${m[1]}`);
    assert.match(script, /mc mb --ignore-existing --with-lock/);
    assert.match(script, /mc version enable/);
    assert.match(script, /mc encrypt set sse-kms/);
    assert.ok('MINIO_KMS_SECRET_KEY' in environmentOf(services.minio!));
    assert.equal(
      env.VIGIE_S3_KMS_KEY_ID,
      environmentOf(services.vigie!).VIGIE_S3_KMS_KEY_ID,
      'the gateway encrypts with the key the bucket defaults to',
    );
  });
});

/** Host ports each service publishes, ranges expanded. */
function publishedPorts(): Array<{ service: string; ip: string; port: number; proto: string }> {
  const out: ReturnType<typeof publishedPorts> = [];
  for (const [service, s] of Object.entries(services)) {
    for (const p of s.ports ?? []) {
      let ip = '0.0.0.0';
      let published: string;
      let proto = 'tcp';
      if (typeof p === 'string') {
        const [spec, pr] = p.split('/');
        if (pr) proto = pr;
        const parts = spec!.split(':');
        assert.ok(parts.length >= 2, `${service}: ${p} publishes no host port explicitly`);
        if (parts.length === 3) ip = parts[0]!;
        published = parts[parts.length - 2]!;
      } else {
        assert.ok(p.published !== undefined, `${service}: port ${p.target} publishes no host port explicitly`);
        published = String(p.published);
        proto = p.protocol ?? 'tcp';
        ip = p.host_ip ?? ip;
      }
      const [from, to] = published.split('-').map(Number);
      for (let port = from!; port <= (to ?? from!); port++) out.push({ service, ip, port, proto });
    }
  }
  return out;
}
