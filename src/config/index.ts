import os from 'node:os';
/**
 * Configuration: one typed object, read once at start.
 *
 * Sources, later wins: built-in defaults, the optional config file
 * (VIGIE_CONFIG_FILE, YAML or JSON, nested keys as in docs/operators.md), then
 * environment variables. Every bad value is reported together, each with the
 * variable that carried it and the reason, so a deployment is fixed in one go.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SETTINGS, tenantSchema, type TenantConfig } from './settings.js';

export {
  API_KEY_SCOPES,
  SETTINGS,
  tenantAuthSchema,
  tenantSchema,
  type TenantConfig,
  type TenantAuthConfig,
  type WebhookEndpointConfig,
} from './settings.js';

export interface Config {
  configFile?: string;
  server: {
    host: string;
    port: number;
    publicUrl: string;
    tlsCertFile?: string;
    tlsKeyFile?: string;
    trustProxy: boolean;
  };
  dataDir: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  logFormat: 'auto' | 'json' | 'pretty';
  metrics: { port?: number; host: string };
  media: {
    workers: number;
    workerBin?: string;
    workerLogLevel: 'debug' | 'warn' | 'error' | 'none';
    listenIp: string;
    announcedAddress?: string;
    rtcMinPort: number;
    rtcMaxPort: number;
    enableUdp: boolean;
    enableTcp: boolean;
    webRtcServer: boolean;
    webRtcServerPort: number;
    initialOutgoingBitrate: number;
    maxPeersPerRoom: number;
    routerConsumerBudget: number;
  };
  auth: {
    issuer: string;
    audience: string;
    hs256Secret?: string;
    jwksUrl?: string;
    clockSkewSeconds: number;
    maxTokenTtlSeconds: number;
    maxIdpTokenAgeSeconds: number;
  };
  signaling: {
    maxFrameBytes: number;
    ratePerSecond: number;
    rateBurst: number;
    maxConnectionsPerIp: number;
    joinTimeoutMs: number;
    heartbeatTimeoutMs: number;
    tokenRefreshLeadSeconds: number;
    drainDeadlineSeconds: number;
  };
  ice: { stunUrls: string[]; turnUrls: string[]; turnSecret?: string; turnCredentialTtlSeconds: number };
  /** This node among those sharing one PostgreSQL (`id` defaults to the host name). */
  node: { id: string; region: string };
  nodes: {
    heartbeatSeconds: number;
    deadAfterSeconds: number;
    singletonRetrySeconds: number;
    forwardTimeoutSeconds: number;
    consumerCapacity: number;
  };
  database: { url?: string; poolSize: number };
  clickhouse: {
    url?: string;
    user: string;
    password?: string;
    database: string;
    cluster?: string;
    requestTimeoutMs: number;
  };
  telemetry: {
    enabled: boolean;
    statsIntervalMs: number;
    focusIntervalMs: number;
    clientStatsIntervalMs: number;
    joinFunnelTimeoutMs: number;
    statsConcurrency: number;
    pseudonymSecret?: string;
  };
  writer: {
    batchRows: number;
    flushIntervalMs: number;
    clientStatsFlushIntervalMs: number;
    maxBufferedRows: number;
    spoolMaxBytes: number;
    spoolFullPolicy: 'drop-oldest' | 'drop-newest';
  };
  adminKeyHash?: string;
  api: { ratePerMinute: number; authFailuresPerMinute: number };
  webhooks: {
    allowPrivateTargets: boolean;
    allowHttp: boolean;
    timeoutMs: number;
    maxAttempts: number;
    backoffBaseMs: number;
    disableAfterFailures: number;
    replayWindowSeconds: number;
    leaseMs: number;
    pollMs: number;
  };
  quality: { alertMos: number; alertSeconds: number };
  storage: {
    driver: 'local' | 's3';
    country: string;
    region: string;
    provider: string;
    s3Endpoint?: string;
    s3Bucket: string;
    s3Region: string;
    s3AccessKey?: string;
    s3SecretKey?: string;
    sse: 'none' | 's3' | 'kms';
    kmsKeyId?: string;
  };
  recording: { segmentSeconds: number; presignTtlSeconds: number };
  retention: { policiesDir: string; sweepIntervalSeconds: number };
  compliance: {
    signingKeyFile?: string;
    checkpointEvery: number;
    checkpointMinutes: number;
    anchorRetentionDays: number;
    subprocessorsFile: string;
  };
  tenants: TenantConfig[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function getPath(obj: unknown, dotted: string): unknown {
  let cur: unknown = obj;
  for (const part of dotted.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    cur[part] ??= {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts.at(-1)!] = value;
}

function readConfigFile(file: string): Record<string, unknown> {
  const text = readFileSync(file, 'utf8');
  const parsed: unknown = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`VIGIE_CONFIG_FILE (${file}): must contain a mapping of settings`]);
  }
  return parsed as Record<string, unknown>;
}

/**
 * A rejected value as shown in ConfigError, which is printed and logged: a
 * secret setting shows only its length, and credentials in a URL are hidden.
 */
function echo(raw: unknown, secret = false): string {
  if (secret)
    return raw === undefined || raw === null
      ? String(raw)
      : `a value of ${String(raw).length} characters, not shown: it is secret`;
  return JSON.stringify(raw)?.replace(/\/\/[^/@\s"]*@/g, '//<credentials>@') ?? 'undefined';
}

/**
 * Why the config file cannot be read, without its content: parsers quote the
 * offending line (YAML) or a slice of the text (JSON), which may hold a secret.
 */
function parseFailure(err: unknown): string {
  const e = err as Error & { code?: string; linePos?: { line: number; col: number }[] };
  if (e.name === 'YAMLParseError' || e.linePos)
    return (
      `invalid YAML (${e.code ?? 'syntax error'} at line ${e.linePos?.[0]?.line ?? '?'}, column ` +
      `${e.linePos?.[0]?.col ?? '?'})`
    );
  if (err instanceof SyntaxError) {
    const at = /position \d+/.exec(e.message)?.[0];
    return `invalid JSON${at ? ` at ${at}` : ''}`;
  }
  return e.message;
}

const KNOWN_TOP_LEVEL = new Set([...SETTINGS.map((s) => s.key.split('.')[0]!), 'tenants']);

/** Reads and validates the configuration. Throws ConfigError listing every bad value. */
export function loadConfig(env: Env = process.env, overrides: Record<string, unknown> = {}): Config {
  const problems: string[] = [];
  const configFile = env.VIGIE_CONFIG_FILE ?? (overrides.configFile as string | undefined);
  let fileValues: Record<string, unknown> = {};
  if (configFile) {
    try {
      fileValues = readConfigFile(configFile);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError([`VIGIE_CONFIG_FILE (${configFile}): cannot be read: ${parseFailure(err)}`]);
    }
    for (const key of Object.keys(fileValues)) {
      if (!KNOWN_TOP_LEVEL.has(key)) problems.push(`${configFile}: unknown top-level key "${key}"`);
    }
  }

  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const fromEnv = env[spec.env];
    const fromOverride = getPath(overrides, spec.key);
    const raw =
      fromEnv !== undefined && fromEnv !== ''
        ? fromEnv
        : fromOverride !== undefined
          ? fromOverride
          : getPath(fileValues, spec.key);
    const source =
      fromEnv !== undefined && fromEnv !== ''
        ? spec.env
        : fromOverride !== undefined
          ? `${spec.key} (override)`
          : `${spec.key} (in ${configFile ?? 'defaults'})`;
    const result = spec.schema.safeParse(raw);
    if (result.success) {
      if (result.data !== undefined) setPath(out, spec.key, result.data);
    } else {
      const reason = result.error.issues.map((i) => i.message).join('; ');
      problems.push(`${source}: ${reason} (got ${echo(raw, spec.secret)})`);
    }
  }

  const tenantsRaw = (overrides.tenants as unknown) ?? fileValues.tenants ?? [];
  const tenants = z.array(tenantSchema).safeParse(tenantsRaw);
  if (tenants.success) {
    out.tenants = tenants.data;
    const ids = new Set<string>();
    for (const t of tenants.data) {
      if (ids.has(t.id)) problems.push(`tenants: tenant "${t.id}" is declared twice`);
      ids.add(t.id);
    }
  } else {
    for (const issue of tenants.error.issues) problems.push(`tenants.${issue.path.join('.')}: ${issue.message}`);
  }

  const cfg = out as unknown as Config;
  // Host names can hold characters a node id may not; the default keeps the valid ones.
  cfg.node.id ??=
    os
      .hostname()
      .replace(/[^A-Za-z0-9_.-]/g, '-')
      .slice(0, 64) || 'node';
  if (problems.length === 0) {
    if (cfg.media.rtcMinPort >= cfg.media.rtcMaxPort) {
      problems.push(
        `VIGIE_MEDIA_RTC_MIN_PORT (${cfg.media.rtcMinPort}) must be lower than VIGIE_MEDIA_RTC_MAX_PORT ` +
          `(${cfg.media.rtcMaxPort})`,
      );
    }
    if (cfg.nodes.deadAfterSeconds <= cfg.nodes.heartbeatSeconds) {
      problems.push(
        `VIGIE_NODES_DEAD_AFTER_S (${cfg.nodes.deadAfterSeconds}) must exceed VIGIE_NODES_HEARTBEAT_S ` +
          `(${cfg.nodes.heartbeatSeconds}): a live node would be seen dead between two heartbeats`,
      );
    }
    if (Boolean(cfg.server.tlsCertFile) !== Boolean(cfg.server.tlsKeyFile)) {
      problems.push('VIGIE_TLS_CERT_FILE and VIGIE_TLS_KEY_FILE must be set together');
    }
    if (cfg.ice.turnUrls.length > 0 && !cfg.ice.turnSecret) {
      problems.push('VIGIE_TURN_URLS is set but VIGIE_TURN_SECRET is not: clients could not authenticate to TURN');
    }
    for (const u of cfg.ice.turnUrls)
      if (!/^turns?:/.test(u)) problems.push(`VIGIE_TURN_URLS: "${u}" is not a turn: or turns: URL`);
    for (const u of cfg.ice.stunUrls)
      if (!/^stuns?:/.test(u)) problems.push(`VIGIE_STUN_URLS: "${u}" is not a stun: URL`);
    if (cfg.media.webRtcServer && cfg.media.webRtcServerPort + cfg.media.workers - 1 > 65535) {
      problems.push('VIGIE_MEDIA_WEBRTC_SERVER_PORT: port + workers exceeds 65535');
    }
    if (
      cfg.storage.driver === 's3' &&
      (!cfg.storage.s3Endpoint || !cfg.storage.s3AccessKey || !cfg.storage.s3SecretKey)
    ) {
      problems.push('VIGIE_STORAGE_DRIVER=s3 needs VIGIE_S3_ENDPOINT, VIGIE_S3_ACCESS_KEY and VIGIE_S3_SECRET_KEY');
    }
    if (!cfg.webhooks.allowHttp) {
      for (const [i, t] of cfg.tenants.entries()) {
        for (const [j, w] of t.webhooks.entries())
          if (new URL(w.url).protocol !== 'https:')
            problems.push(
              `tenants.${i}.webhooks.${j}.url: must be https (deliveries carry identities); plain http needs ` +
                `VIGIE_WEBHOOK_ALLOW_HTTP=true`,
            );
      }
    }
    if (cfg.webhooks.leaseMs <= cfg.webhooks.timeoutMs)
      problems.push(
        'VIGIE_WEBHOOK_LEASE_MS must exceed VIGIE_WEBHOOK_TIMEOUT_MS: a lease ending mid-attempt sends twice',
      );
    if (cfg.storage.sse === 'kms' && !cfg.storage.kmsKeyId) problems.push('VIGIE_S3_SSE=kms needs VIGIE_S3_KMS_KEY_ID');
    if (cfg.media.listenIp === '0.0.0.0' && !cfg.media.announcedAddress) {
      problems.push('VIGIE_MEDIA_LISTEN_IP is 0.0.0.0: set VIGIE_MEDIA_ANNOUNCED_ADDRESS to the address clients reach');
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);

  cfg.dataDir = path.resolve(cfg.dataDir);
  cfg.retention.policiesDir = path.resolve(cfg.retention.policiesDir);
  cfg.compliance.subprocessorsFile = path.resolve(cfg.compliance.subprocessorsFile);
  if (!cfg.server.publicUrl) {
    const scheme = cfg.server.tlsCertFile ? 'https' : 'http';
    const host = cfg.server.host === '0.0.0.0' || cfg.server.host === '::' ? 'localhost' : cfg.server.host;
    cfg.server.publicUrl = `${scheme}://${host}:${cfg.server.port}`;
  }
  cfg.server.publicUrl = cfg.server.publicUrl.replace(/\/+$/, '');
  return cfg;
}

/** Markdown table of every setting, for docs/operators.md (kept in sync by a test). */
export function settingsMarkdownTable(): string {
  const rows = SETTINGS.map(
    (s) =>
      `| \`${s.env}\` | \`${s.key}\` | ${s.defaultLabel} | ` +
      `${s.doc}${s.secret ? ' *Secret*: never echoed in errors.' : ''} |`,
  );
  return ['| Variable | File key | Default | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}
