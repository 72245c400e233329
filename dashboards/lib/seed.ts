/**
 * Realistic rows for every table the dashboards read, over the two hours
 * before `now`: three calls (a clean one, a lossy one, one relayed through
 * TURN), their stats from both sides, events, recordings, retention
 * deletions, an audit trail, data-subject requests, and the gateway's
 * OpenTelemetry metrics as the collector's clickhouse exporter stores them.
 *
 * Vigie's telemetry goes through the gateway's own ClickHouseWriter (the path
 * production rows take); the other tables get plain inserts.
 */
import { estimateMos, videoQualityScore } from '../../src/telemetry/quality.js';

export interface SeedTarget {
  /** The gateway's writer: rows for Vigie's tables in its database. */
  write(table: string, row: Record<string, unknown>): void;
  /** JSONEachRow insert into a fully qualified table. */
  insert(table: string, rows: Array<Record<string, unknown>>): Promise<void>;
}

export interface SeededCall {
  tenant: string;
  room: string;
  callId: string;
  participants: string[];
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (r: () => number, n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
const uuid = (r: () => number) => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-a${hex(r, 3)}-${hex(r, 12)}`;

interface CallPlan {
  tenant: string;
  room: string;
  startMinAgo: number;
  minutes: number;
  people: number;
  loss: number;
  jitterMs: number;
  rttMs: number;
  protocol: 'udp' | 'tcp';
  candidate: 'host' | 'srflx' | 'relay';
  worker: number;
}

const PLANS: CallPlan[] = [
  {
    tenant: 'acme',
    room: 'support-42',
    startMinAgo: 100,
    minutes: 30,
    people: 3,
    loss: 0.002,
    jitterMs: 4,
    rttMs: 35,
    protocol: 'udp',
    candidate: 'host',
    worker: 0,
  },
  {
    tenant: 'acme',
    room: 'intake',
    startMinAgo: 60,
    minutes: 20,
    people: 2,
    loss: 0.06,
    jitterMs: 28,
    rttMs: 180,
    protocol: 'tcp',
    candidate: 'srflx',
    worker: 1,
  },
  {
    tenant: 'globex',
    room: 'teleconsult-7',
    startMinAgo: 45,
    minutes: 25,
    people: 2,
    loss: 0.01,
    jitterMs: 9,
    rttMs: 70,
    protocol: 'udp',
    candidate: 'relay',
    worker: 0,
  },
];

const STEP_MS = 10_000;

export async function seed(target: SeedTarget, now: number): Promise<SeededCall[]> {
  const r = rng(7);
  const calls: SeededCall[] = [];
  // Calls spread over two nodes, as a cluster's rows are (the SFU dashboard's per-node view).
  for (const [i, plan] of PLANS.entries()) calls.push(seedCall(target, plan, now, r, SEED_NODES[i % 2]!));
  target.write('call_events', {
    ts: now - 70 * 60_000,
    tenant: '',
    room: '',
    call_id: '',
    peer_id: '',
    participant: '',
    node: SEED_NODES[0],
    event: 'worker.died',
    object_id: '4242',
    reason: 'worker process exited with code 139',
    attrs: { worker: '1' },
  });
  await seedCompliance(target, now, calls, r);
  await seedMetrics(target, now, r);
  return calls;
}

/**
 * One join_funnel row per participant, a join every 4 s from the call's start; slower through TURN or over TCP.
 * The lossy call also has a refused join (a removed participant trying again). Its own random sequence: the other
 * seeded figures stay as they were.
 */
function seedJoins(target: SeedTarget, plan: CallPlan, start: number, keys: Array<Record<string, string>>): void {
  const r = rng(plan.startMinAgo);
  const slow = plan.candidate === 'relay' || plan.protocol === 'tcp' ? 3 : 1;
  const ms = (base: number) => Math.round((base + r() * base) * slow);
  const none = { failed_step: '', error_code: '', reason: '' };
  keys.forEach((key, i) => {
    const joined = ms(40);
    const send = joined + ms(150);
    const recv = joined + ms(120);
    target.write('join_funnel', {
      ts: start + i * 4000 - joined,
      ...key,
      outcome: 'joined',
      ...none,
      token_issued_ms: -ms(800),
      ws_open_ms: -ms(30),
      joined_ms: joined,
      send_connected_ms: send,
      recv_connected_ms: recv,
      first_rtp_ms: send + ms(15),
      first_frame_ms: recv + ms(250),
      first_audio_ms: recv + ms(120),
    });
  });
  if (plan.loss > 0.05)
    target.write('join_funnel', {
      ts: start + 5 * 60_000,
      ...keys[1],
      peer_id: '',
      outcome: 'failed',
      failed_step: 'joined',
      error_code: 'FORBIDDEN',
      reason: 'you were removed from this room',
      token_issued_ms: -2000,
      ws_open_ms: -12,
      joined_ms: null,
      send_connected_ms: null,
      recv_connected_ms: null,
      first_rtp_ms: null,
      first_frame_ms: null,
      first_audio_ms: null,
    });
}

/** The node ids the seeded rows carry. */
export const SEED_NODES = ['vigie-1', 'vigie-2'];

function seedCall(target: SeedTarget, plan: CallPlan, now: number, r: () => number, node: string): SeededCall {
  const callId = uuid(r);
  const start = now - plan.startMinAgo * 60_000;
  const end = start + plan.minutes * 60_000;
  const people = Array.from({ length: plan.people }, () => ({ peer: hex(r, 12), participant: hex(r, 64) }));
  const key = (p?: (typeof people)[number]) => ({
    tenant: plan.tenant,
    room: plan.room,
    call_id: callId,
    peer_id: p?.peer ?? '',
    participant: p?.participant ?? '',
    node,
  });
  const event = (
    ts: number,
    p: (typeof people)[number] | undefined,
    ev: string,
    objectId: string,
    reason = '',
    attrs: Record<string, string> = {},
  ) => target.write('call_events', { ts, ...key(p), event: ev, object_id: objectId, reason, attrs });

  event(start, undefined, 'room.created', plan.room, '', { worker: String(plan.worker) });
  // Each participant: a send and a receive transport, a mic and a camera, and a consumer of every other participant's tracks.
  const producers = people.map((p) => ({
    p,
    audio: uuid(r),
    video: uuid(r),
    audioSsrc: 1e8 + Math.floor(r() * 1e8),
    videoSsrc: 1e8 + Math.floor(r() * 1e8),
  }));
  const transports = people.map((p) => ({ p, send: uuid(r), recv: uuid(r) }));
  people.forEach((p, i) => {
    const t0 = start + i * 4000;
    event(t0, p, 'peer.joined', p.peer, '', { grants: 'publish,subscribe' });
    const t = transports[i]!;
    for (const [dir, id] of [
      ['send', t.send],
      ['recv', t.recv],
    ] as const) {
      event(t0 + 200, p, 'transport.created', id, '', { direction: dir });
      event(t0 + 900, p, 'ice.state', id, '', { state: 'connected' });
      event(t0 + 1000, p, 'transport.connected', id, '', { protocol: plan.protocol });
    }
    const pr = producers[i]!;
    event(t0 + 1200, p, 'producer.created', pr.audio, '', { kind: 'audio', codec: 'audio/opus', source: 'mic' });
    event(t0 + 1300, p, 'producer.created', pr.video, '', { kind: 'video', codec: 'video/VP8', source: 'camera' });
  });
  seedJoins(
    target,
    plan,
    start,
    people.map((p) => key(p)),
  );
  const consumers: Array<{
    p: (typeof people)[number];
    of: (typeof producers)[number];
    kind: 'audio' | 'video';
    id: string;
    ssrc: number;
  }> = [];
  for (const p of people) {
    for (const of of producers.filter((x) => x.p !== p)) {
      for (const kind of ['audio', 'video'] as const) {
        const id = uuid(r);
        consumers.push({ p, of, kind, id, ssrc: 1e8 + Math.floor(r() * 1e8) });
        event(start + 6000, p, 'consumer.created', id, '', {
          kind,
          producer_id: kind === 'audio' ? of.audio : of.video,
          type: kind === 'audio' ? 'simple' : 'simulcast',
        });
      }
    }
  }
  // A mid-call network wobble on the first participant's receive transport.
  const wobble = start + Math.floor(plan.minutes / 2) * 60_000;
  event(wobble, people[0], 'ice.state', transports[0]!.recv, '', { state: 'disconnected' });
  event(wobble + 2000, people[0], 'ice.restart', transports[0]!.recv);
  event(wobble + 3000, people[0], 'ice.state', transports[0]!.recv, '', { state: 'connected' });
  if (plan.loss > 0.05) event(wobble + 60_000, people[1], 'transport.failed', transports[1]!.send, 'dtls-failed');
  // The wobble as the call diagnosis (src/diagnosis) sees it: the second participant's uplink loses video packets,
  // and everyone who receives that video suffers. Ids and figures are fixed, so the random draws stay as they were.
  const lossy = people[1] ?? people[0]!;
  const issue = {
    issue_id: `${callId}/1`,
    issue: 'uplink_loss',
    direction: 'uplink',
    kind: 'video',
    affected: people
      .filter((p) => p !== lossy)
      .map((p) => p.participant)
      .join(','),
    loss_pct: String(Math.round(plan.loss * 3 * 1000) / 10),
    packets: '110',
  };
  const lossyVideo = producers.find((x) => x.p === lossy)!.video;
  event(wobble - 30_000, lossy, 'quality.issue', lossyVideo, '', issue);
  event(wobble + 45_000, lossy, 'quality.resolved', lossyVideo, 'recovered', { ...issue, duration_ms: '75000' });

  const counters = new Map<string, { packets: number; bytes: number; lost: number; freezes: number }>();
  const cumulative = (id: string, packets: number, bytes: number, lost: number, froze: boolean) => {
    const c = counters.get(id) ?? { packets: 0, bytes: 0, lost: 0, freezes: 0 };
    c.packets += packets;
    c.bytes += bytes;
    c.lost += lost;
    if (froze) c.freezes++;
    counters.set(id, c);
    return c;
  };

  for (let ts = start + 10_000; ts < end; ts += STEP_MS) {
    // Worse in the middle of the call: the wobble.
    const bad = Math.abs(ts - wobble) < 90_000 ? 3 : 1;
    const sample = (base: number, spread: number) => Math.max(0, base * (1 + (r() - 0.5) * spread));
    const row = (
      p: (typeof people)[number],
      o: { track: string; producer: string; kind: 'audio' | 'video'; direction: 'inbound' | 'outbound'; ssrc: number },
    ) => {
      const bitrate = o.kind === 'audio' ? sample(32_000, 0.2) : sample(plan.loss > 0.05 ? 450_000 : 1_200_000, 0.3);
      const packets = Math.round((bitrate / 8 / (o.kind === 'audio' ? 120 : 1100)) * (STEP_MS / 1000));
      const loss = Math.min(0.5, sample(plan.loss * bad, 1));
      const lost = Math.round(packets * loss);
      const jitter = sample(plan.jitterMs * bad, 0.6);
      const rtt = sample(plan.rttMs, 0.3);
      const mos = o.kind === 'audio' ? estimateMos({ lossFraction: loss, jitterMs: jitter, rttMs: rtt }) : null;
      const fps = o.kind === 'video' ? sample(plan.loss > 0.05 ? 15 : 28, 0.2) : null;
      target.write('track_stats', {
        ts,
        ...key(p),
        track_id: o.track,
        producer_id: o.producer,
        kind: o.kind,
        direction: o.direction,
        source: o.kind === 'audio' ? 'mic' : 'camera',
        codec: o.kind === 'audio' ? 'opus' : 'VP8',
        ssrc: o.ssrc,
        spatial_layer: o.kind === 'video' ? 2 : -1,
        temporal_layer: o.kind === 'video' ? 2 : -1,
        interval_ms: STEP_MS,
        bitrate_bps: bitrate,
        packets,
        bytes: Math.round((bitrate / 8) * (STEP_MS / 1000)),
        packets_lost: lost,
        loss_fraction: loss,
        jitter_ms: jitter,
        rtt_ms: rtt,
        nack_count: Math.round(lost * 0.8),
        pli_count: o.kind === 'video' && bad > 1 ? 1 : 0,
        fir_count: 0,
        score: Math.max(0, Math.min(10, Math.round(10 - loss * 60))),
        frame_rate: fps,
        frame_width: o.kind === 'video' ? 1280 : null,
        frame_height: o.kind === 'video' ? 720 : null,
        mos,
        video_quality:
          fps !== null
            ? videoQualityScore({
                width: 1280,
                height: 720,
                fps,
                reference: { width: 1280, height: 720, fps: 30 },
                freezeMs: bad > 1 ? 400 : 0,
                intervalMs: STEP_MS,
                lossFraction: loss,
              })
            : null,
      });
      // The browser's side of the same track: what it sends (producer) or receives (consumer).
      const c = cumulative(
        o.track,
        packets,
        Math.round((bitrate / 8) * (STEP_MS / 1000)),
        lost,
        o.kind === 'video' && bad > 1,
      );
      target.write('client_stats', {
        ts: ts + 300,
        ...key(p),
        kind: o.kind,
        direction: o.direction === 'inbound' ? 'outbound' : 'inbound',
        producer_id: o.producer,
        consumer_id: o.direction === 'outbound' ? o.track : '',
        ssrc: o.ssrc,
        bytes: c.bytes,
        packets: c.packets,
        packets_lost: o.direction === 'outbound' ? c.lost : 0,
        jitter_ms: sample(jitter, 0.2),
        jitter_buffer_delay_ms:
          o.direction === 'outbound' ? sample(o.kind === 'audio' ? 40 + jitter * 2 : 60 + jitter * 2, 0.2) : null,
        freeze_count: o.direction === 'outbound' && o.kind === 'video' ? c.freezes : null,
        total_freezes_duration_ms: o.direction === 'outbound' && o.kind === 'video' ? c.freezes * 400 : null,
        concealed_samples: o.direction === 'outbound' && o.kind === 'audio' ? c.lost * 960 : null,
        total_samples_received: o.direction === 'outbound' && o.kind === 'audio' ? c.packets * 960 : null,
        frames_decoded: o.direction === 'outbound' && o.kind === 'video' ? Math.round((c.packets / 4) * 1) : null,
        frames_per_second: fps,
        frame_width: o.kind === 'video' ? 1280 : null,
        frame_height: o.kind === 'video' ? 720 : null,
        candidate_type: plan.candidate,
        protocol: plan.protocol,
        rtt_ms: sample(rtt, 0.1),
        available_outgoing_bitrate: o.direction === 'inbound' ? 2_500_000 : null,
      });
    };
    for (const pr of producers) {
      row(pr.p, { track: pr.audio, producer: pr.audio, kind: 'audio', direction: 'inbound', ssrc: pr.audioSsrc });
      row(pr.p, { track: pr.video, producer: pr.video, kind: 'video', direction: 'inbound', ssrc: pr.videoSsrc });
    }
    for (const c of consumers)
      row(c.p, {
        track: c.id,
        producer: c.kind === 'audio' ? c.of.audio : c.of.video,
        kind: c.kind,
        direction: 'outbound',
        ssrc: c.ssrc,
      });
    for (const t of transports) {
      for (const [direction, id] of [
        ['send', t.send],
        ['recv', t.recv],
      ] as const) {
        const bitrate = sample(direction === 'send' ? 1_250_000 : 1_250_000 * (plan.people - 1), 0.2);
        target.write('transport_stats', {
          ts,
          ...key(t.p),
          transport_id: id,
          direction,
          ice_state: 'connected',
          dtls_state: 'connected',
          protocol: plan.protocol,
          candidate_type: plan.candidate,
          interval_ms: STEP_MS,
          bytes_received: direction === 'send' ? Math.round((bitrate / 8) * 10) : 4000,
          bytes_sent: direction === 'recv' ? Math.round((bitrate / 8) * 10) : 4000,
          recv_bitrate_bps: direction === 'send' ? bitrate : 3200,
          send_bitrate_bps: direction === 'recv' ? bitrate : 3200,
          available_outgoing_bitrate: direction === 'recv' ? 3_000_000 : null,
          rtt_ms: sample(plan.rttMs, 0.3),
        });
      }
    }
  }
  for (const c of consumers) {
    target.write('call_events', {
      ts: start + 8000,
      ...key(c.p),
      event: 'consumer.score',
      object_id: c.id,
      reason: '',
      attrs: { score: '10', producer_score: '10' },
    });
  }
  for (const [i, p] of people.entries()) {
    event(end - (people.length - i) * 1000, p, 'peer.left', p.peer, i === 0 ? 'left' : 'disconnected', {
      duration_ms: String(end - start - i * 4000),
    });
  }
  event(end, undefined, 'room.closed', plan.room, 'empty', { duration_ms: String(end - start) });
  return { tenant: plan.tenant, room: plan.room, callId, participants: people.map((p) => p.participant) };
}

async function seedCompliance(target: SeedTarget, now: number, calls: SeededCall[], r: () => number): Promise<void> {
  const DAY = 86_400_000;
  // Recordings: each call recorded (two files for the long one), plus older ones from the last days, some deleted, one on hold.
  const recordings: Array<Record<string, unknown>> = [];
  const recording = (o: {
    tenant: string;
    room: string;
    callId: string;
    participants: string[];
    startedAt: number;
    minutes: number;
    retainDays: number;
    hold?: boolean;
    deletedAt?: number;
    status?: string;
  }) => {
    const size = Math.round(o.minutes * 60 * (o.participants.length * 160_000));
    recordings.push({
      id: `rec_${hex(r, 16)}`,
      session_id: `ses_${hex(r, 12)}`,
      tenant: o.tenant,
      room: o.room,
      call_id: o.callId,
      participants: o.participants,
      tracks: [],
      codecs: ['opus', 'VP8'],
      started_at: o.startedAt,
      ended_at: o.startedAt + o.minutes * 60_000,
      duration_s: o.minutes * 60,
      size_bytes: size,
      sha256: hex(r, 64),
      content_type: 'video/webm',
      storage_target: 's3:vigie-recordings',
      storage_country: 'FR',
      object_key: `${o.tenant}/${o.room}/${hex(r, 8)}.webm`,
      version_id: uuid(r),
      retain_until: o.startedAt + o.retainDays * DAY,
      lock_mode: 'GOVERNANCE',
      legal_hold: o.hold ? 1 : 0,
      retention_policy: 'default',
      status: o.status ?? (o.deletedAt ? 'deleted' : 'ready'),
      deleted_at: o.deletedAt ?? null,
      deletion_reason: o.deletedAt ? 'retention: expired' : '',
      updated_at: o.deletedAt ?? o.startedAt + o.minutes * 60_000,
    });
  };
  for (const c of calls)
    recording({
      ...c,
      startedAt: now - 90 * 60_000 + recordings.length * 600_000,
      minutes: 10,
      retainDays: c.tenant === 'acme' ? 20 : 90,
      hold: c.tenant === 'globex',
    });
  recording({ ...calls[0]!, startedAt: now - 80 * 60_000, minutes: 10, retainDays: 20 });
  recording({ ...calls[1]!, startedAt: now - 5 * 60 * 60_000, minutes: 3, retainDays: 30, status: 'failed' });
  for (let day = 1; day <= 5; day++)
    recording({
      ...calls[day % 2]!,
      startedAt: now - day * DAY,
      minutes: 15 + day,
      retainDays: 7,
      deletedAt: day > 3 ? now - 30 * 60_000 : undefined,
    });
  await target.insert('recordings', recordings);

  const deletions: Array<Record<string, unknown>> = [];
  for (const rec of recordings.filter((x) => x.deleted_at)) {
    deletions.push({
      ts: rec.deleted_at,
      tenant: rec.tenant,
      category: 'recordings',
      object_id: rec.id,
      object_key: rec.object_key,
      version_id: rec.version_id,
      policy: 'default',
      reason: 'expired',
    });
  }
  for (let i = 0; i < 6; i++) {
    deletions.push({
      ts: now - (20 + i * 15) * 60_000,
      tenant: i % 2 ? 'globex' : 'acme',
      category: i % 3 === 0 ? 'track_stats' : 'call_events',
      object_id: `ttl:${hex(r, 8)}`,
      object_key: '',
      version_id: '',
      policy: 'default',
      reason: 'ClickHouse TTL',
    });
  }
  await target.insert('retention_deletions', deletions);

  // The audit trail: numbered per tenant, one refused action.
  const audit: Array<Record<string, unknown>> = [];
  const seqs = new Map<string, number>();
  const actions = [
    'recording.read',
    'recording.download',
    'recordings.list',
    'recording.legal_hold',
    'dsar.access',
    'audit.verify',
    'tokens.mint',
  ];
  for (let i = 0; i < 40; i++) {
    const tenant = i % 3 === 2 ? 'globex' : 'acme';
    const seq = (seqs.get(tenant) ?? 0) + 1;
    seqs.set(tenant, seq);
    const action = actions[i % actions.length]!;
    audit.push({
      tenant,
      seq,
      ts: now - (110 - i * 2.5) * 60_000,
      actor: i % 4 === 0 ? 'key:acmedpo1' : 'key:acme01',
      action,
      target: action.startsWith('recording')
        ? `recording:${recordings[i % recordings.length]!.id}`
        : action === 'dsar.access'
          ? 'subject:pseudonym'
          : tenant,
      subject: action === 'dsar.access' ? hex(r, 64) : '',
      result: i === 17 ? 'FORBIDDEN' : 'ok',
      source_ip: '10.0.0.5',
      details: '{}',
      prev_hash: hex(r, 64),
      hash: hex(r, 64),
    });
  }
  await target.insert('audit_log', audit);

  // Data-subject requests: one answered, one in progress for weeks (overdue), one just received.
  const dsar: Array<Record<string, unknown>> = [];
  const req = (tenant: string, kind: string, steps: Array<[number, string]>) => {
    const id = `dsar_${hex(r, 10)}`;
    const subject = hex(r, 64);
    for (const [t, status] of steps) dsar.push({ ts: t, tenant, request_id: id, kind, subject, status, summary: '{}' });
  };
  req('acme', 'access', [
    [now - 2 * DAY, 'received'],
    [now - 2 * DAY + 3_600_000, 'completed'],
  ]);
  req('acme', 'erasure', [
    [now - 40 * DAY, 'received'],
    [now - 39 * DAY, 'in_progress'],
  ]);
  req('globex', 'erasure', [[now - 3 * 3_600_000, 'received']]);
  req('globex', 'access', [
    [now - 100 * 60_000, 'received'],
    [now - 95 * 60_000, 'completed'],
  ]);
  await target.insert('dsar_requests', dsar);
}

/** The gateway's metrics, every 15 s, as the clickhouse exporter stores them (delta temporality). */
async function seedMetrics(target: SeedTarget, now: number, r: () => number): Promise<void> {
  const STEP = 15_000;
  const resource = {
    'service.name': 'vigie-gateway',
    'host.name': 'vigie-1',
    'process.pid': '1',
    'telemetry.sdk.language': 'nodejs',
  };
  const base = { ResourceAttributes: resource, ServiceName: 'vigie-gateway', ScopeName: 'vigie', ScopeVersion: '' };
  const t = (ms: number) => (ms / 1000).toFixed(3);
  const gauges: Array<Record<string, unknown>> = [];
  const sums: Array<Record<string, unknown>> = [];
  const histograms: Array<Record<string, unknown>> = [];
  const bounds = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
  for (let ts = now - 2 * 3_600_000; ts <= now; ts += STEP) {
    const minutesAgo = (now - ts) / 60_000;
    const active = PLANS.filter((p) => minutesAgo <= p.startMinAgo && minutesAgo >= p.startMinAgo - p.minutes);
    const peers = active.reduce((n, p) => n + p.people, 0);
    const gauge = (name: string, value: number, unit = '') =>
      gauges.push({
        ...base,
        MetricName: name,
        MetricUnit: unit,
        Attributes: {},
        StartTimeUnix: t(ts - STEP),
        TimeUnix: t(ts),
        Value: value,
      });
    gauge('vigie.rooms', active.length);
    gauge('vigie.peers', peers);
    gauge('vigie.producers', peers * 2);
    gauge(
      'vigie.consumers',
      active.reduce((n, p) => n + p.people * (p.people - 1) * 2, 0),
    );
    const stalled = minutesAgo > 30 && minutesAgo < 33; // ClickHouse briefly unreachable: the queue and the spool grow
    gauge('vigie.writer.queue_depth', stalled ? 12_000 + Math.round(r() * 3000) : Math.round(r() * 400));
    gauge('vigie.spool.bytes', stalled ? 2_500_000 * (minutesAgo - 30) : 0, 'By');
    const sum = (name: string, value: number, attrs: Record<string, string> = {}, unit = '') =>
      sums.push({
        ...base,
        MetricName: name,
        MetricUnit: unit,
        Attributes: attrs,
        StartTimeUnix: t(ts - STEP),
        TimeUnix: t(ts),
        Value: value,
        AggregationTemporality: 1,
        IsMonotonic: true,
      });
    for (const worker of [0, 1]) {
      const load = active.filter((p) => p.worker === worker).reduce((n, p) => n + p.people, 0);
      sum('vigie.worker.cpu', (STEP / 1000) * (0.01 + 0.06 * load + r() * 0.02), { worker: String(worker) }, 's');
    }
    const rows = peers * 25 + Math.round(r() * 10);
    sum('vigie.rows.written', stalled ? 0 : rows);
    sum('vigie.rows.dropped', 0);
    const inserts = stalled ? 0 : 8;
    if (inserts) {
      const lat = Array.from({ length: inserts }, () => 3 + r() * 20 + (r() < 0.1 ? 200 : 0));
      const counts = bounds.map(() => 0).concat([0]);
      for (const ms of lat) {
        const i = bounds.findIndex((b) => ms <= b);
        counts[i < 0 ? bounds.length : i]!++;
      }
      histograms.push({
        ...base,
        MetricName: 'vigie.clickhouse.insert_latency',
        MetricUnit: 'ms',
        Attributes: { ok: 'true' },
        StartTimeUnix: t(ts - STEP),
        TimeUnix: t(ts),
        Count: inserts,
        Sum: lat.reduce((a, b) => a + b, 0),
        BucketCounts: counts,
        ExplicitBounds: bounds,
        Min: Math.min(...lat),
        Max: Math.max(...lat),
        AggregationTemporality: 1,
      });
    } else {
      histograms.push({
        ...base,
        MetricName: 'vigie.clickhouse.insert_latency',
        MetricUnit: 'ms',
        Attributes: { ok: 'false' },
        StartTimeUnix: t(ts - STEP),
        TimeUnix: t(ts),
        Count: 2,
        Sum: 60_000,
        BucketCounts: bounds.map(() => 0).concat([2]),
        ExplicitBounds: bounds,
        Min: 30_000,
        Max: 30_000,
        AggregationTemporality: 1,
      });
    }
  }
  await target.insert('otel.otel_metrics_gauge', gauges);
  await target.insert('otel.otel_metrics_sum', sums);
  await target.insert('otel.otel_metrics_histogram', histograms);
}
