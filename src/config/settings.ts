import os from 'node:os';
import { z } from 'zod';
import { LANGUAGES } from '../web/i18n.js';

/**
 * Every scalar setting of the gateway, in one table. The loader, the error
 * messages and the settings table of docs/operators.md all come from here, so a setting
 * cannot exist in one place and be missing in another.
 */
export interface SettingSpec {
  /** Dotted path in the config file and in the resulting object. */
  readonly key: string;
  /** Environment variable that overrides the file. */
  readonly env: string;
  readonly schema: z.ZodType;
  /** Default shown in the settings table of docs/operators.md; `undefined` means "unset". */
  readonly defaultLabel: string;
  readonly doc: string;
  /** A secret: a rejected value is never echoed in ConfigError (which ends up in logs). */
  readonly secret?: boolean;
}

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const bool = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0', 'yes', 'no'])])
  .transform((v) => v === true || v === 'true' || v === '1' || v === 'yes');
const csv = z.union([z.array(z.string()), z.string()]).transform((v) =>
  Array.isArray(v)
    ? v
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
);
const ip = z.union([z.ipv4(), z.ipv6()]);
const url = z.url();

function setting(
  key: string,
  env: string,
  schema: z.ZodType,
  defaultLabel: string,
  doc: string,
  options: { secret?: boolean } = {},
): SettingSpec {
  return { key, env, schema, defaultLabel, doc, ...options };
}

const SECRET = { secret: true };

export const SETTINGS: readonly SettingSpec[] = [
  setting(
    'configFile',
    'VIGIE_CONFIG_FILE',
    z.string().min(1).optional(),
    'unset',
    'YAML or JSON file read before the environment; environment variables win.',
  ),
  setting(
    'server.host',
    'VIGIE_HOST',
    z.string().min(1).default('127.0.0.1'),
    '127.0.0.1',
    'Address the HTTP/WebSocket server binds to.',
  ),
  setting(
    'server.port',
    'VIGIE_PORT',
    z.coerce.number().int().min(0).max(65535).default(8080),
    '8080',
    'HTTP/WebSocket port (0: any free port).',
  ),
  setting(
    'server.publicUrl',
    'VIGIE_PUBLIC_URL',
    url.optional(),
    'http://HOST:PORT',
    'Base URL used in join links handed to business apps.',
  ),
  setting(
    'server.tlsCertFile',
    'VIGIE_TLS_CERT_FILE',
    z.string().min(1).optional(),
    'unset',
    'PEM certificate; with the key, the server speaks HTTPS/WSS.',
  ),
  setting(
    'server.tlsKeyFile',
    'VIGIE_TLS_KEY_FILE',
    z.string().min(1).optional(),
    'unset',
    'PEM private key matching VIGIE_TLS_CERT_FILE.',
  ),
  setting(
    'server.trustProxy',
    'VIGIE_TRUST_PROXY',
    bool.default(false),
    'false',
    'Trust X-Forwarded-* headers (behind a reverse proxy).',
  ),
  setting(
    'dataDir',
    'VIGIE_DATA_DIR',
    z.string().min(1).default('./data'),
    './data',
    'Where generated secrets and local state live.',
  ),
  setting(
    'logLevel',
    'VIGIE_LOG_LEVEL',
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    'info',
    'pino log level.',
  ),
  setting(
    'logFormat',
    'VIGIE_LOG_FORMAT',
    z.enum(['auto', 'json', 'pretty']).default('auto'),
    'auto',
    'Log lines on stdout: `pretty` (coloured, one readable line per event), `json` (one JSON object per line, for ' +
      'a log pipeline), or `auto`: pretty when stdout is a terminal, JSON otherwise.',
  ),
  setting(
    'metrics.port',
    'VIGIE_METRICS_PORT',
    port.optional(),
    'unset (no /metrics)',
    'Port of the Prometheus scrape endpoint `/metrics` (OpenMetrics), on its own listener apart from the public ' +
      'port. Unset: not served.',
  ),
  setting(
    'metrics.host',
    'VIGIE_METRICS_HOST',
    z.string().min(1).default('127.0.0.1'),
    '127.0.0.1',
    'Address the `/metrics` listener binds to: loopback by default; a private address for a Prometheus on another ' +
      'host, never a public one.',
  ),

  setting(
    'media.workers',
    'VIGIE_MEDIA_WORKERS',
    positiveInt.max(64).default(os.availableParallelism()),
    'number of cores',
    'mediasoup workers in the pool.',
  ),
  setting(
    'media.workerBin',
    'MEDIASOUP_WORKER_BIN',
    z.string().min(1).optional(),
    'auto',
    'Path of the mediasoup-worker binary; found automatically when unset (see scripts/setup.sh).',
  ),
  setting(
    'media.workerLogLevel',
    'VIGIE_MEDIA_WORKER_LOG_LEVEL',
    z.enum(['debug', 'warn', 'error', 'none']).default('warn'),
    'warn',
    'mediasoup worker log level.',
  ),
  setting(
    'media.listenIp',
    'VIGIE_MEDIA_LISTEN_IP',
    ip.default('127.0.0.1'),
    '127.0.0.1',
    'IP the media sockets listen on (0.0.0.0 on a server).',
  ),
  setting(
    'media.announcedAddress',
    'VIGIE_MEDIA_ANNOUNCED_ADDRESS',
    z.string().min(1).optional(),
    'unset',
    'Public IP or hostname given to clients in ICE candidates (NAT, cloud hosts).',
  ),
  setting(
    'media.rtcMinPort',
    'VIGIE_MEDIA_RTC_MIN_PORT',
    port.default(40000),
    '40000',
    'Lowest UDP/TCP port for media.',
  ),
  setting(
    'media.rtcMaxPort',
    'VIGIE_MEDIA_RTC_MAX_PORT',
    port.default(49999),
    '49999',
    'Highest UDP/TCP port for media.',
  ),
  setting('media.enableUdp', 'VIGIE_MEDIA_ENABLE_UDP', bool.default(true), 'true', 'Offer UDP ICE candidates.'),
  setting('media.enableTcp', 'VIGIE_MEDIA_ENABLE_TCP', bool.default(true), 'true', 'Offer TCP ICE candidates.'),
  setting(
    'media.webRtcServer',
    'VIGIE_MEDIA_WEBRTC_SERVER',
    bool.default(false),
    'false',
    'Single-port mode: each worker serves all transports on one port (firewall-friendly).',
  ),
  setting(
    'media.webRtcServerPort',
    'VIGIE_MEDIA_WEBRTC_SERVER_PORT',
    port.default(44444),
    '44444',
    'First port of WebRtcServer mode; worker N listens on this port + N.',
  ),
  setting(
    'media.initialOutgoingBitrate',
    'VIGIE_MEDIA_INITIAL_OUTGOING_BITRATE',
    positiveInt.default(1_000_000),
    '1000000',
    'Initial outgoing bitrate of WebRTC transports (bps).',
  ),
  setting(
    'media.maxPeersPerRoom',
    'VIGIE_MEDIA_MAX_PEERS_PER_ROOM',
    positiveInt.max(1000).default(50),
    '50',
    'Peers allowed in one room.',
  ),
  setting(
    'media.routerConsumerBudget',
    'VIGIE_MEDIA_ROUTER_CONSUMER_BUDGET',
    positiveInt.default(400),
    '400',
    'Consumers one router of a room carries before new participants are served by a router on another worker, ' +
      'linked with pipeToRouter (mediasoup: a worker handles about 500 consumers).',
  ),

  setting(
    'auth.issuer',
    'VIGIE_AUTH_ISSUER',
    z.string().min(1).default('vigie'),
    'vigie',
    'Expected `iss` of access tokens (also used for tokens the gateway mints).',
  ),
  setting(
    'auth.audience',
    'VIGIE_AUTH_AUDIENCE',
    z.string().min(1).default('vigie'),
    'vigie',
    'Expected `aud` of access tokens.',
  ),
  setting(
    'auth.hs256Secret',
    'VIGIE_AUTH_HS256_SECRET',
    z.string().min(32, 'must be at least 32 characters').optional(),
    'generated in DATA_DIR',
    'Shared secret for HS256 tokens. Generated and kept in the data directory when unset.',
    SECRET,
  ),
  setting(
    'auth.jwksUrl',
    'VIGIE_AUTH_JWKS_URL',
    url.optional(),
    'unset',
    'JWKS of an identity provider; tokens signed with RS256/ES256/EdDSA keys from it are accepted.',
  ),
  setting(
    'auth.clockSkewSeconds',
    'VIGIE_AUTH_CLOCK_SKEW_S',
    z.coerce.number().int().min(0).max(300).default(30),
    '30',
    'Tolerance on exp/nbf/iat.',
  ),
  setting(
    'auth.maxTokenTtlSeconds',
    'VIGIE_AUTH_MAX_TOKEN_TTL_S',
    positiveInt.max(7 * 86400).default(86400),
    '86400',
    'Longest TTL `POST /v1/tokens` will mint.',
  ),
  setting(
    'auth.maxIdpTokenAgeSeconds',
    'VIGIE_AUTH_IDP_MAX_TOKEN_AGE_S',
    positiveInt.max(7 * 86400).default(3600),
    '3600',
    'Oldest identity-provider (JWKS) token accepted, by its `iat`, whatever its `exp`; such tokens must carry `iat`.',
  ),

  setting(
    'signaling.maxFrameBytes',
    'VIGIE_SIGNALING_MAX_FRAME_BYTES',
    positiveInt
      .min(1024)
      .max(1 << 20)
      .default(64 * 1024),
    '65536',
    'Largest signaling frame accepted; larger ones are refused.',
  ),
  setting(
    'signaling.ratePerSecond',
    'VIGIE_SIGNALING_RATE_PER_S',
    positiveInt.max(10_000).default(50),
    '50',
    'Sustained requests per second per connection.',
  ),
  setting(
    'signaling.heartbeatTimeoutMs',
    'VIGIE_SIGNALING_HEARTBEAT_TIMEOUT_MS',
    positiveInt.min(1000).max(600_000).default(30_000),
    '30000',
    'A connection that answers no WebSocket ping for this long is dropped, and its participant leaves with reason ' +
      '`timeout`.',
  ),
  setting(
    'signaling.tokenRefreshLeadSeconds',
    'VIGIE_TOKEN_REFRESH_LEAD_S',
    positiveInt.max(86_400).default(300),
    '300',
    'How long before its access token expires a connected participant is sent a fresh one (at most half the ' +
      "token's lifetime before).",
  ),
  setting(
    'signaling.drainDeadlineSeconds',
    'VIGIE_DRAIN_DEADLINE_S',
    positiveInt.max(86_400).default(30),
    '30',
    'On SIGTERM, how long the gateway waits for calls to end before it tells the remaining participants to ' +
      'reconnect elsewhere and exits.',
  ),
  setting(
    'signaling.rateBurst',
    'VIGIE_SIGNALING_RATE_BURST',
    positiveInt.max(10_000).default(100),
    '100',
    'Burst of requests per connection above the sustained rate.',
  ),
  setting(
    'signaling.maxConnectionsPerIp',
    'VIGIE_SIGNALING_MAX_CONNECTIONS_PER_IP',
    positiveInt.max(100_000).default(100),
    '100',
    'Open signaling connections allowed from one client address; more are closed with 1013.',
  ),
  setting(
    'signaling.joinTimeoutMs',
    'VIGIE_SIGNALING_JOIN_TIMEOUT_MS',
    positiveInt.min(500).max(300_000).default(10_000),
    '10000',
    'A connection that has not joined a room this long after opening is closed with 1008.',
  ),

  setting('ice.stunUrls', 'VIGIE_STUN_URLS', csv.default([]), 'none', 'Comma-separated stun: URLs given to clients.'),
  setting(
    'ice.turnUrls',
    'VIGIE_TURN_URLS',
    csv.default([]),
    'none',
    'Comma-separated turn:/turns: URLs given to clients.',
  ),
  setting(
    'ice.turnSecret',
    'VIGIE_TURN_SECRET',
    z.string().min(16, 'must be at least 16 characters').optional(),
    'unset',
    "coturn's static-auth-secret; time-limited credentials are derived from it.",
    SECRET,
  ),
  setting(
    'ice.turnCredentialTtlSeconds',
    'VIGIE_TURN_CREDENTIAL_TTL_S',
    positiveInt.max(86400).default(3600),
    '3600',
    'Lifetime of issued TURN credentials.',
  ),

  setting(
    'node.id',
    'VIGIE_NODE_ID',
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . and -')
      .optional(),
    'the host name',
    'This node among the nodes that share one PostgreSQL: named in the node registry, in telemetry rows and in ' +
      'logs. Unique per node.',
  ),
  setting(
    'node.region',
    'VIGIE_NODE_REGION',
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . and -')
      .default('default'),
    'default',
    'Region of this node, for placement with region affinity.',
  ),
  setting(
    'nodes.heartbeatSeconds',
    'VIGIE_NODES_HEARTBEAT_S',
    positiveInt.max(300).default(2),
    '2',
    'How often this node publishes its liveness and load (peers, consumers, worker CPU) in the node registry.',
  ),
  setting(
    'nodes.deadAfterSeconds',
    'VIGIE_NODES_DEAD_AFTER_S',
    positiveInt.max(3600).default(10),
    '10',
    'A node whose last heartbeat is older than this is dead: placement skips it, and its rooms are taken over ' +
      'where they are next joined. Must exceed VIGIE_NODES_HEARTBEAT_S.',
  ),
  setting(
    'nodes.forwardTimeoutSeconds',
    'VIGIE_NODES_FORWARD_TIMEOUT_S',
    positiveInt.max(300).default(10),
    '10',
    'How long a node waits for the node that holds a room when it forwards a REST call on that room (remove, ' +
      'mute, record, close) there; past it the caller gets 503 UNAVAILABLE.',
  ),
  setting(
    'nodes.singletonRetrySeconds',
    'VIGIE_NODES_SINGLETON_RETRY_S',
    positiveInt.max(300).default(3),
    '3',
    'How often a node retries taking the lock of a one-node job (retention sweeper, TTL application) that ' +
      'another node holds: the longest a job stays without a node after its holder died, plus the server noticing.',
  ),
  setting(
    'nodes.consumerCapacity',
    'VIGIE_NODES_CONSUMER_CAPACITY',
    z.coerce.number().int().min(0).default(0),
    '0',
    'Consumers a node carries before it counts as full: a join that reaches another node for a room on a full ' +
      'node extends the room to that node (a room that spans nodes, linked by SRTP pipe transports). 0: no limit.',
  ),
  setting(
    'database.url',
    'VIGIE_DATABASE_URL',
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
      .optional(),
    'unset (embedded)',
    'PostgreSQL server holding the control plane (tenants, keys, rooms, the webhook outbox, audit chain heads, ' +
      'nodes) shared by every node. Unset: the embedded engine (PGlite, one node) under DATA_DIR/postgres.',
    SECRET,
  ),
  setting(
    'database.poolSize',
    'VIGIE_DATABASE_POOL_SIZE',
    positiveInt.max(200).default(10),
    '10',
    'Connections each node keeps to the PostgreSQL server (LISTEN and singleton locks take one more each).',
  ),

  setting(
    'clickhouse.url',
    'CLICKHOUSE_URL',
    url.optional(),
    'unset (embedded)',
    'HTTP URL of a clickhouse-server (production). Unset: the embedded ClickHouse engine (chdb) under ' +
      'DATA_DIR/clickhouse.',
  ),
  setting(
    'clickhouse.user',
    'CLICKHOUSE_USER',
    z.string().min(1).default('default'),
    'default',
    'ClickHouse user (HTTP mode).',
  ),
  setting(
    'clickhouse.password',
    'CLICKHOUSE_PASSWORD',
    z.string().optional(),
    'unset',
    'ClickHouse password (HTTP mode).',
    SECRET,
  ),
  setting(
    'clickhouse.database',
    'CLICKHOUSE_DATABASE',
    z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'letters, digits and _')
      .default('vigie'),
    'vigie',
    'Database holding every Vigie table.',
  ),
  setting(
    'clickhouse.cluster',
    'CLICKHOUSE_CLUSTER',
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a cluster name')
      .optional(),
    'unset',
    'When set, DDL runs ON CLUSTER and tables use Replicated engines.',
  ),
  setting(
    'clickhouse.requestTimeoutMs',
    'CLICKHOUSE_REQUEST_TIMEOUT_MS',
    positiveInt.max(600_000).default(30_000),
    '30000',
    'Timeout of one ClickHouse request.',
  ),

  setting(
    'telemetry.enabled',
    'VIGIE_TELEMETRY',
    bool.default(true),
    'true',
    'Collect stats and call events into ClickHouse. When false, the audit log, recording and data-subject requests ' +
      'stay on.',
  ),
  setting(
    'telemetry.statsIntervalMs',
    'VIGIE_STATS_INTERVAL_MS',
    z.coerce.number().int().min(1000, 'must be at least 1000 (1 s)').max(600_000).default(5000),
    '5000',
    'Sampling interval of server-side track and transport stats.',
  ),
  setting(
    'telemetry.focusIntervalMs',
    'VIGIE_STATS_FOCUS_INTERVAL_MS',
    z.coerce
      .number()
      .int()
      .refine((v) => v === 0 || (v >= 1000 && v <= 600_000), 'must be 0 (off) or between 1000 and 600000')
      .default(1000),
    '1000',
    'Sampling interval of the tracks in trouble: those whose loss score the SFU lowered, or whose layer it changed, ' +
      'for 10 such intervals after the last sign. The call diagnosis sees issues at this pace while the others are ' +
      'sampled every VIGIE_STATS_INTERVAL_MS; the workers are probed for overload at this pace too. 0 turns it off; ' +
      'it has no effect at or above that interval.',
  ),
  setting(
    'telemetry.clientStatsIntervalMs',
    'VIGIE_CLIENT_STATS_INTERVAL_MS',
    z.coerce.number().int().min(1000, 'must be at least 1000 (1 s)').max(600_000).default(5000),
    '5000',
    'How often the browser SDK reports its own getStats() summary.',
  ),
  setting(
    'telemetry.joinFunnelTimeoutMs',
    'VIGIE_JOIN_FUNNEL_TIMEOUT_MS',
    z.coerce.number().int().min(1000, 'must be at least 1000 (1 s)').max(600_000).default(60_000),
    '60000',
    'How long after entering its room a join waits for its last steps (first RTP, first frame, first audio) ' +
      'before its join_funnel row is written with what it reached.',
  ),
  setting(
    'telemetry.statsConcurrency',
    'VIGIE_STATS_CONCURRENCY',
    positiveInt.max(256).default(16),
    '16',
    'getStats() calls in flight at once while sampling.',
  ),
  setting(
    'telemetry.pseudonymSecret',
    'VIGIE_PSEUDONYM_SECRET',
    z.string().min(32, 'must be at least 32 characters').optional(),
    'generated in DATA_DIR',
    "Master secret from which each tenant's pseudonymisation key is derived (HKDF).",
    SECRET,
  ),
  setting(
    'writer.batchRows',
    'VIGIE_WRITER_BATCH_ROWS',
    positiveInt.max(1_000_000).default(5000),
    '5000',
    'Rows per ClickHouse insert.',
  ),
  setting(
    'writer.flushIntervalMs',
    'VIGIE_WRITER_FLUSH_MS',
    positiveInt.min(50).max(60_000).default(2000),
    '2000',
    'Longest time a row waits in memory before its batch is sent.',
  ),
  setting(
    'writer.clientStatsFlushIntervalMs',
    'VIGIE_WRITER_CLIENT_STATS_FLUSH_MS',
    positiveInt.min(50).max(600_000).default(10_000),
    '10000',
    "The same for browsers' client-stats rows: they trickle in, and each insert costs the gateway " +
      'about 2 ms of CPU whatever its size.',
  ),
  setting(
    'writer.maxBufferedRows',
    'VIGIE_WRITER_MAX_BUFFERED_ROWS',
    positiveInt.max(10_000_000).default(100_000),
    '100000',
    'Rows held in memory at most; beyond it batches go straight to the spool.',
  ),
  setting(
    'writer.spoolMaxBytes',
    'VIGIE_SPOOL_MAX_BYTES',
    positiveInt.min(1 << 20).default(1 << 30),
    '1073741824',
    'Disk the spool may use while ClickHouse is unavailable.',
  ),
  setting(
    'writer.spoolFullPolicy',
    'VIGIE_SPOOL_FULL_POLICY',
    z.enum(['drop-oldest', 'drop-newest']).default('drop-oldest'),
    'drop-oldest',
    'What a full spool gives up: its oldest segment, or the batch being written. Either way it is logged and counted.',
  ),

  setting(
    'adminKeyHash',
    'VIGIE_ADMIN_KEY_HASH',
    z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>')
      .optional(),
    'unset (admin API off)',
    'Hash of the operator key for /v1/admin (tenants, API keys). The key itself is never stored.',
    SECRET,
  ),
  setting(
    'api.ratePerMinute',
    'VIGIE_API_RATE_PER_MIN',
    positiveInt.max(100_000_000).default(600),
    '600',
    'REST requests per minute per authenticated caller (verified API key, user token, or the operator key).',
  ),
  setting(
    'api.authFailuresPerMinute',
    'VIGIE_API_AUTH_FAILURES_PER_MIN',
    positiveInt.max(100_000_000).default(30),
    '30',
    'Failed authentications per minute per client address; beyond it, requests from that address that fail to ' +
      'authenticate get 429.',
  ),
  setting(
    'webhooks.allowPrivateTargets',
    'VIGIE_WEBHOOK_ALLOW_PRIVATE',
    bool.default(false),
    'false',
    'Allow webhook URLs that resolve to private, loopback or link-local addresses (SSRF protection off).',
  ),
  setting(
    'webhooks.allowHttp',
    'VIGIE_WEBHOOK_ALLOW_HTTP',
    bool.default(false),
    'false',
    'Allow plain http:// webhook URLs. Off by default: deliveries carry participant identities, so they go over ' +
      'https only.',
  ),
  setting(
    'webhooks.timeoutMs',
    'VIGIE_WEBHOOK_TIMEOUT_MS',
    positiveInt.min(100).max(60_000).default(5000),
    '5000',
    'Timeout of one delivery attempt.',
  ),
  setting(
    'webhooks.maxAttempts',
    'VIGIE_WEBHOOK_MAX_ATTEMPTS',
    positiveInt.max(100).default(12),
    '12',
    'Attempts per delivery before it is given up.',
  ),
  setting(
    'webhooks.backoffBaseMs',
    'VIGIE_WEBHOOK_BACKOFF_MS',
    positiveInt.min(10).max(3_600_000).default(2000),
    '2000',
    'First retry delay; doubles per attempt (capped at 1 h), with full jitter.',
  ),
  setting(
    'webhooks.disableAfterFailures',
    'VIGIE_WEBHOOK_DISABLE_AFTER',
    positiveInt.max(10_000).default(50),
    '50',
    'Consecutive failed attempts after which an endpoint is disabled.',
  ),
  setting(
    'webhooks.leaseMs',
    'VIGIE_WEBHOOK_LEASE_MS',
    positiveInt.min(1000).max(3_600_000).default(60_000),
    '60000',
    'Lease of a node on a delivery it is sending. When the node dies, another one sends the delivery again (same ' +
      'id) once the lease has expired. Must exceed webhooks.timeoutMs.',
  ),
  setting(
    'webhooks.pollMs',
    'VIGIE_WEBHOOK_POLL_MS',
    positiveInt.min(10).max(60_000).default(500),
    '500',
    'How often each node looks for due deliveries (retries, expired leases). New deliveries also wake every node ' +
      'at once through a PostgreSQL notification, so a node that finds nothing backs off, doubling the wait up to 8 ' +
      'times this; a retry the node schedules wakes it at its time.',
  ),
  setting(
    'webhooks.replayWindowSeconds',
    'VIGIE_WEBHOOK_REPLAY_WINDOW_S',
    positiveInt.max(3600).default(300),
    '300',
    'Replay window receivers should enforce on Vigie-Signature timestamps (documented, sent as a header).',
  ),
  setting(
    'quality.alertMos',
    'VIGIE_QUALITY_ALERT_MOS',
    z.coerce.number().min(1).max(4.5).default(3.1),
    '3.1',
    "quality.alert fires when a participant's audio MOS stays below this…",
  ),
  setting(
    'quality.alertSeconds',
    'VIGIE_QUALITY_ALERT_SECONDS',
    positiveInt.max(3600).default(15),
    '15',
    '…for this many seconds.',
  ),

  setting(
    'storage.driver',
    'VIGIE_STORAGE_DRIVER',
    z.enum(['local', 's3']).default('local'),
    'local',
    'Where recordings are kept: a local directory (DATA_DIR/objects) or an S3 bucket (MinIO in production).',
  ),
  setting(
    'storage.country',
    'VIGIE_STORAGE_COUNTRY',
    z
      .string()
      .regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2 country code')
      .default('FR'),
    'FR',
    'Country where the storage target keeps data (data residency).',
  ),
  setting(
    'storage.region',
    'VIGIE_STORAGE_REGION',
    z.string().min(1).default('local'),
    'local',
    'Region or site of the storage target, e.g. fr-par-1.',
  ),
  setting(
    'storage.provider',
    'VIGIE_STORAGE_PROVIDER',
    z.string().min(1).default('self-hosted'),
    'self-hosted',
    'Who operates the storage target (appears in the subprocessor report).',
  ),
  setting(
    'storage.s3Endpoint',
    'VIGIE_S3_ENDPOINT',
    url.optional(),
    'unset',
    'S3 endpoint URL (path-style), e.g. http://minio:9000.',
  ),
  setting(
    'storage.s3Bucket',
    'VIGIE_S3_BUCKET',
    z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{2,62}$/, 'an S3 bucket name')
      .default('vigie-recordings'),
    'vigie-recordings',
    'Bucket; created with Object Lock if missing.',
  ),
  setting(
    'storage.s3Region',
    'VIGIE_S3_REGION',
    z.string().min(1).default('us-east-1'),
    'us-east-1',
    'S3 signing region.',
  ),
  setting('storage.s3AccessKey', 'VIGIE_S3_ACCESS_KEY', z.string().min(3).optional(), 'unset', 'S3 access key.'),
  setting(
    'storage.s3SecretKey',
    'VIGIE_S3_SECRET_KEY',
    z.string().min(8).optional(),
    'unset',
    'S3 secret key.',
    SECRET,
  ),
  setting(
    'storage.sse',
    'VIGIE_S3_SSE',
    z.enum(['none', 's3', 'kms']).default('none'),
    'none',
    'Server-side encryption of recordings: none, SSE-S3 (AES256) or SSE-KMS.',
  ),
  setting('storage.kmsKeyId', 'VIGIE_S3_KMS_KEY_ID', z.string().min(1).optional(), 'unset', 'KMS key id for SSE-KMS.'),
  setting(
    'recording.segmentSeconds',
    'VIGIE_RECORDING_SEGMENT_S',
    positiveInt.min(10).max(86_400).default(600),
    '600',
    'Long recordings are cut into files of this length.',
  ),
  setting(
    'recording.presignTtlSeconds',
    'VIGIE_RECORDING_URL_TTL_S',
    positiveInt.min(10).max(3600).default(300),
    '300',
    'Lifetime of presigned download URLs.',
  ),
  setting(
    'retention.policiesDir',
    'VIGIE_RETENTION_POLICIES_DIR',
    z.string().min(1).default('./retention-policies'),
    './retention-policies',
    'Folder of retention policy YAML files.',
  ),
  setting(
    'retention.sweepIntervalSeconds',
    'VIGIE_RETENTION_SWEEP_S',
    positiveInt.min(1).max(86_400).default(3600),
    '3600',
    'How often expired recordings are looked for and deleted.',
  ),

  setting(
    'compliance.signingKeyFile',
    'VIGIE_AUDIT_SIGNING_KEY_FILE',
    z.string().min(1).optional(),
    'generated in DATA_DIR',
    'Private ES256 JWK that signs audit checkpoints and exports; its public half is served at /.well-known/jwks.json.',
  ),
  setting(
    'compliance.checkpointEvery',
    'VIGIE_AUDIT_CHECKPOINT_EVERY',
    positiveInt.max(1_000_000).default(1000),
    '1000',
    'A signed checkpoint every N audit entries per tenant…',
  ),
  setting(
    'compliance.checkpointMinutes',
    'VIGIE_AUDIT_CHECKPOINT_MINUTES',
    positiveInt.max(1440).default(10),
    '10',
    '…or every M minutes, whichever comes first.',
  ),
  setting(
    'compliance.anchorRetentionDays',
    'VIGIE_AUDIT_ANCHOR_RETENTION_DAYS',
    positiveInt.max(36_500).default(3650),
    '3650',
    'With S3 storage, each signed audit checkpoint is also stored in the recordings bucket under a COMPLIANCE ' +
      'Object Lock of this many days (with local storage: an fsynced append-only file in DATA_DIR/audit).',
  ),
  setting(
    'compliance.subprocessorsFile',
    'VIGIE_SUBPROCESSORS_FILE',
    z.string().min(1).default('./compliance/subprocessors.yaml'),
    './compliance/subprocessors.yaml',
    'Register of subprocessors the report checks the configuration against.',
  ),
];

/**
 * What an API key may be allowed. `tokens:moderator` and `tokens:recorder` let a
 * minting key put the `admin` and `record` grants in a token; `recordings:read`
 * also lets it mint the `recordings:read` grant.
 */
export const API_KEY_SCOPES = [
  'tokens:mint',
  'tokens:moderator',
  'tokens:recorder',
  'rooms:read',
  'rooms:write',
  'recordings:read',
  'dpo',
  'admin',
] as const;

/**
 * A tenant's own trust for user tokens. When set, only these keys sign for the
 * tenant (the global secret and JWKS no longer do), and they sign for nobody else.
 */
export const tenantAuthSchema = z
  .object({
    /** HS256 secret of this tenant's business app; also what the gateway mints this tenant's tokens with. */
    hs256Secret: z.string().min(32, 'must be at least 32 characters').optional(),
    /** JWKS of this tenant's identity provider (RS256, ES256, EdDSA). */
    jwksUrl: z
      .url()
      .refine((u) => /^https?:\/\//.test(u), 'must be http(s)')
      .optional(),
  })
  .strict()
  .refine((a) => a.hs256Secret !== undefined || a.jwksUrl !== undefined, 'set hs256Secret, jwksUrl or both');

/**
 * Tenants are structured, so they come from the config file only. Issue #6
 * adds an admin API on top of the same shape.
 */
export const tenantSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, at most 63'),
  name: z.string().min(1).optional(),
  /** Origins allowed to frame /embed (CSP frame-ancestors). */
  embedOrigins: z.array(z.url().or(z.literal("'self'"))).default([]),
  /**
   * Language of the join and embed pages when neither `?lang=` nor the browser's Accept-Language names one they speak.
   */
  defaultLanguage: z.enum(LANGUAGES).optional(),
  apiKeys: z
    .array(
      z.object({
        id: z.string().regex(/^[A-Za-z0-9]{4,32}$/, '4 to 32 letters or digits'),
        /** `sha256:<hex>` of the whole key; the clear key is never stored. */
        hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex digits>'),
        scopes: z.array(z.enum(API_KEY_SCOPES)).default(['tokens:mint']),
        revoked: z.boolean().default(false),
      }),
    )
    .default([]),
  /** Per-tenant token trust; unset: the global VIGIE_AUTH_HS256_SECRET and VIGIE_AUTH_JWKS_URL. */
  auth: tenantAuthSchema.optional(),
  /** Storage locations (ISO country codes) this tenant's recordings may be kept in. */
  allowedLocations: z
    .array(z.string().regex(/^[A-Z]{2}$/, 'ISO 3166-1 alpha-2 country code'))
    .min(1)
    .default(['FR']),
  /**
   * A join that reaches a node in another region than the node holding the room is served there: the room extends
   * to that node (a room that spans nodes), so each participant's media stays in its own region.
   */
  regionAffinity: z.boolean().optional(),
  /** Name of the retention policy (retention-policies/) that applies to this tenant. */
  retentionPolicy: z
    .string()
    .regex(/^[a-z0-9-]{1,64}$/)
    .default('default'),
  webhooks: z
    .array(
      z.object({
        id: z.string().regex(/^[A-Za-z0-9_-]{4,64}$/),
        url: z.url().refine((u) => /^https?:\/\//.test(u), 'must be http(s)'),
        /** Event names, or ["*"] for all. */
        events: z.array(z.string().min(1).max(64)).min(1).default(['*']),
        /** Signing secret (HMAC-SHA256); needed in clear to sign, so the tenants file is kept 0600. */
        secret: z.string().min(24),
        enabled: z.boolean().default(true),
      }),
    )
    .default([]),
});
export type TenantConfig = z.infer<typeof tenantSchema>;
export type WebhookEndpointConfig = TenantConfig['webhooks'][number];
export type TenantAuthConfig = z.infer<typeof tenantAuthSchema>;
