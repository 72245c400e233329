import type { ClickHouseClient } from '@clickhouse/client';

/**
 * What the REST API tells about a finished or running call, read back from ClickHouse: the `quality.issue` /
 * `quality.resolved` call events the detectors wrote (CallDiagnosis.ts), the participants and their display names
 * (`participants`, the only table with identities in clear), the join funnel when the deployment has it, and one
 * plain-English verdict per participant. Reads only: each table has its writer elsewhere.
 */
export interface StoredIssue {
  issueId: string;
  /** The detector's name (`uplink_loss`, `downlink_loss`, `one_way_media`, ...); new detectors add new names. */
  issue: string;
  direction: string;
  /** audio or video. */
  kind: string;
  /** Whose network or client it is (pseudonym). */
  participant: string;
  peerId: string;
  trackId: string;
  startedMs: number;
  /** Null while the issue is open. */
  endedMs: number | null;
  /** How it ended (`recovered`, `track closed`, ...); null while open. */
  resolution: string | null;
  /** Pseudonyms of the participants who suffered from it. */
  affected: string[];
  /** The figures that triggered it, as numbers where they are numbers. */
  evidence: Record<string, number | string>;
}

/** Attributes of a quality event that are not evidence. */
const NOT_EVIDENCE = new Set(['issue_id', 'issue', 'direction', 'kind', 'affected', 'duration_ms']);

interface QualityRow {
  ts_ms: string;
  event: string;
  participant: string;
  peer_id: string;
  object_id: string;
  reason: string;
  attrs: Record<string, string>;
}

/**
 * The issues of one call, in order of start; `within` keeps those that overlap a span (an open issue lasts to now).
 */
export async function callIssues(
  client: ClickHouseClient,
  db: string,
  tenant: string,
  callId: string,
  within?: { fromMs: number; toMs: number },
): Promise<StoredIssue[]> {
  const rs = await client.query({
    query: `SELECT toString(toUnixTimestamp64Milli(ts)) AS ts_ms, event, participant, peer_id, object_id, reason, attrs
      FROM ${db}.call_events
      WHERE tenant = {tenant:String} AND call_id = {callId:String} AND event IN ('quality.issue', 'quality.resolved')
      ORDER BY ts`,
    query_params: { tenant, callId },
    format: 'JSONEachRow',
  });
  const byId = new Map<string, StoredIssue>();
  for (const r of await rs.json<QualityRow>()) {
    const id = r.attrs.issue_id ?? '';
    const ts = Number(r.ts_ms);
    if (r.event === 'quality.issue') {
      byId.set(id, {
        issueId: id,
        issue: r.attrs.issue ?? 'unknown',
        direction: r.attrs.direction ?? '',
        kind: r.attrs.kind ?? '',
        participant: r.participant,
        peerId: r.peer_id,
        trackId: r.object_id,
        startedMs: ts,
        endedMs: null,
        resolution: null,
        affected: (r.attrs.affected ?? '').split(',').filter(Boolean),
        evidence: Object.fromEntries(
          Object.entries(r.attrs)
            .filter(([k]) => !NOT_EVIDENCE.has(k))
            .map(([k, v]) => [k, v !== '' && Number.isFinite(Number(v)) ? Number(v) : v]),
        ),
      });
    } else {
      const issue = byId.get(id);
      // A resolution without its start (written before a retention cut) says nothing on its own.
      if (issue) Object.assign(issue, { endedMs: ts, resolution: r.reason || 'resolved' });
    }
  }
  const issues = [...byId.values()];
  if (!within) return issues;
  return issues.filter((i) => i.startedMs <= within.toMs && (i.endedMs ?? Number.POSITIVE_INFINITY) >= within.fromMs);
}

export interface CallParticipant {
  participant: string;
  identity: string | null;
  /** The display name; null once erased (a data-subject request) or never recorded. */
  name: string | null;
  peerIds: string[];
  joinedMs: number;
  leftMs: number | null;
}

/** The call's room and span, or undefined when the tenant has no such call (whoever else may have it). */
export async function findCall(
  client: ClickHouseClient,
  db: string,
  tenant: string,
  callId: string,
): Promise<{ room: string; startedMs: number; lastEventMs: number } | undefined> {
  const rs = await client.query({
    query: `SELECT count() AS n, any(room) AS call_room, toString(toUnixTimestamp64Milli(min(ts))) AS first_ms,
        toString(toUnixTimestamp64Milli(max(ts))) AS last_ms
      FROM ${db}.call_events WHERE tenant = {tenant:String} AND call_id = {callId:String}`,
    query_params: { tenant, callId },
    format: 'JSONEachRow',
  });
  const [row] = await rs.json<{ n: string; call_room: string; first_ms: string; last_ms: string }>();
  if (!row || Number(row.n) === 0) return undefined;
  return { room: row.call_room, startedMs: Number(row.first_ms), lastEventMs: Number(row.last_ms) };
}

/** Who took part in the call (from its join and leave events), with their names. */
export async function callParticipants(
  client: ClickHouseClient,
  db: string,
  tenant: string,
  callId: string,
): Promise<CallParticipant[]> {
  const rs = await client.query({
    query: `SELECT participant AS pseudonym, groupUniqArray(peer_id) AS peers,
        toString(toUnixTimestamp64Milli(minIf(ts, event = 'peer.joined'))) AS joined_ms,
        countIf(event = 'peer.left') >= countIf(event = 'peer.joined') AS gone,
        toString(toUnixTimestamp64Milli(maxIf(ts, event = 'peer.left'))) AS left_ms
      FROM ${db}.call_events
      WHERE tenant = {tenant:String} AND call_id = {callId:String} AND event IN ('peer.joined', 'peer.left')
        AND participant != ''
      GROUP BY participant ORDER BY joined_ms`,
    query_params: { tenant, callId },
    format: 'JSONEachRow',
  });
  const rows = await rs.json<{
    pseudonym: string;
    peers: string[];
    joined_ms: string;
    gone: number;
    left_ms: string;
  }>();
  const names = await client.query({
    query: `SELECT participant AS pseudonym, argMax(identity, updated_at) AS who, argMax(display_name, updated_at) AS dn
      FROM ${db}.participants WHERE tenant = {tenant:String} AND participant IN {ps:Array(String)}
      GROUP BY participant`,
    query_params: { tenant, ps: rows.map((r) => r.pseudonym) },
    format: 'JSONEachRow',
  });
  const named = new Map(
    (await names.json<{ pseudonym: string; who: string; dn: string }>()).map((n) => [n.pseudonym, n]),
  );
  return rows.map((r) => ({
    participant: r.pseudonym,
    identity: named.get(r.pseudonym)?.who || null,
    name: named.get(r.pseudonym)?.dn || null,
    peerIds: r.peers.sort(),
    joinedMs: Number(r.joined_ms),
    leftMs: r.gone ? Number(r.left_ms) : null,
  }));
}

/** Columns of a join_funnel row that say whose call it is rather than how the join went. */
const FUNNEL_KEYS = new Set(['tenant', 'room', 'call_id', 'participant']);

/**
 * The join funnel of each participant of the call (one entry per join), from `join_funnel` when this deployment has
 * that table (it is written by the join funnel recorder, src/telemetry); undefined when it does not. Its columns are
 * passed through as they are, so that a step added there appears here without a change.
 */
export async function callJoinFunnel(
  client: ClickHouseClient,
  db: string,
  tenant: string,
  callId: string,
): Promise<Map<string, Record<string, unknown>[]> | undefined> {
  const exists = await client.query({
    query: `SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'join_funnel'`,
    query_params: { db },
    format: 'JSONEachRow',
  });
  if (Number((await exists.json<{ n: string }>())[0]?.n ?? 0) === 0) return undefined;
  const rs = await client.query({
    query: `SELECT * FROM ${db}.join_funnel WHERE tenant = {tenant:String} AND call_id = {callId:String} ORDER BY ts`,
    query_params: { tenant, callId },
    format: 'JSONEachRow',
  });
  const out = new Map<string, Record<string, unknown>[]>();
  for (const row of await rs.json<Record<string, unknown>>()) {
    const who = String(row.participant ?? '');
    const steps = Object.fromEntries(Object.entries(row).filter(([k]) => !FUNNEL_KEYS.has(k)));
    out.set(who, [...(out.get(who) ?? []), steps]);
  }
  return out;
}

/** `10:02:03` (UTC): verdicts speak of one call, so the time of day is enough. */
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 19);

/** ` (worker 1)`: which worker of the server an issue was on, when it says. */
const workerOf = (i: StoredIssue) => (i.evidence.worker !== undefined ? ` (worker ${i.evidence.worker})` : '');

/** When an issue happened, in words. */
function span(i: StoredIssue): string {
  return i.endedMs === null
    ? `since ${clock(i.startedMs)} UTC (still going on)`
    : `from ${clock(i.startedMs)} to ${clock(i.endedMs)} UTC`;
}

/** A list of names in English: `Bob`, `Bob and Carol`, `Bob, Carol and Dave`. */
function names(list: string[]): string {
  return list.length <= 1 ? (list[0] ?? '') : `${list.slice(0, -1).join(', ')} and ${list.at(-1)}`;
}

/** What an issue was, said from the side of the participant whose network it is. */
function ownClause(name: string, i: StoredIssue, nameOf: (p: string) => string): string {
  const lost = typeof i.evidence.loss_pct === 'number' ? `${i.evidence.loss_pct}%` : 'some';
  const others = i.affected.filter((p) => p !== i.participant).map(nameOf);
  const media = i.kind || 'media';
  switch (i.issue) {
    case 'uplink_loss':
      return (
        `${name}'s uplink lost ${lost} of ${media} packets ${span(i)}; ` +
        (others.length ? `everyone who received it was affected (${names(others)})` : 'nobody was receiving it')
      );
    case 'uplink_congestion':
      return (
        `${name}'s uplink became too narrow for their ${media}: they sent ${i.evidence.layers} of their ` +
        `${i.evidence.sender_top_layers} quality layers (${i.evidence.bitrate_kbps} kbit/s, down from ` +
        `${i.evidence.full_bitrate_kbps}) ${span(i)}` +
        (others.length ? `; everyone who received it was affected (${names(others)})` : '')
      );
    case 'downlink_loss':
      return (
        `${name}'s downlink lost ${lost} of the ${media} packets sent to them ${span(i)}; ` +
        `only ${name} was affected`
      );
    case 'one_way_media':
      return `${name} received none of a ${media} track that reached the server ${span(i)} (one-way media)`;
    case 'encoder_limited':
      return (
        `${name}'s ${i.evidence.reason === 'cpu' ? 'computer' : 'connection'} held back their video encoder ` +
        `(${i.evidence.reason}) ${span(i)}` +
        (others.length ? `; everyone who received it was affected (${names(others)})` : '')
      );
    case 'video_frozen': {
      const seconds = `${Math.round(Number(i.evidence.frozen_ms ?? 0) / 100) / 10} s`;
      return i.direction === 'downlink'
        ? `${name}'s video froze for ${seconds} ${span(i)}, on their own downlink`
        : `${name}'s side froze the video ${names(others)} received, for ${seconds}, ${span(i)}`;
    }
    case 'downlink_congestion':
      return (
        `${name}'s downlink held their ${media} below the quality the sender sent (layer ${i.evidence.layer} of ` +
        `${i.evidence.sender_top_layer}) ${span(i)}; only ${name} was affected`
      );
    case 'turn_relay':
      return `${name} was connected through the TURN relay ${span(i)} (a restrictive network: more delay)`;
    case 'uplink_jitter':
      return (
        `${name}'s uplink delivered their ${media} unevenly (jitter ${i.evidence.jitter_ms} ms) ${span(i)}` +
        (others.length ? `; everyone who received it was affected (${names(others)})` : '')
      );
    case 'downlink_jitter':
      return (
        `${name}'s downlink delivered the ${media} sent to them unevenly (jitter ${i.evidence.jitter_ms} ms) ` +
        `${span(i)}; only ${name} was affected`
      );
    case 'high_rtt':
      return (
        `${name}'s connection was slow (${i.evidence.rtt_ms} ms round trip to the server) ${span(i)}, which ` +
        `delayed the conversation` +
        (others.length ? ` with ${names(others)}` : '')
      );
    case 'ice_restart_failed':
      return `${name}'s connection was lost and an ICE restart did not bring it back ${span(i)}`;
    default:
      // A detector this version does not know by name: said with its own name, still whose and when.
      return `${name}'s ${i.direction || 'connection'} had ${i.issue.replaceAll('_', ' ')} (${media}) ${span(i)}`;
  }
}

/**
 * One line per participant, in plain English: the issues of their own network or client first, then those of
 * others that they suffered from; "no issue" when there was none.
 */
export function verdictFor(participant: string, issues: StoredIssue[], nameOf: (p: string) => string): string {
  const name = nameOf(participant);
  const own = issues.filter((i) => i.participant === participant).map((i) => ownClause(name, i, nameOf));
  const suffered = issues
    .filter((i) => i.participant !== participant && i.affected.includes(participant))
    .map((i) =>
      // An issue of the server (an overloaded worker) has no participant at fault.
      i.participant
        ? `${nameOf(i.participant)}'s ${i.issue.replaceAll('_', ' ')} ${span(i)}`
        : `the server's ${i.issue.replaceAll('_', ' ')}${workerOf(i)} ${span(i)}`,
    );
  if (!own.length && !suffered.length) return `No issue was detected for ${name}.`;
  const parts = [...own];
  if (suffered.length)
    parts.push(
      own.length
        ? `${name} also suffered from ${names(suffered)}`
        : `${name}'s own network was fine; ${name} suffered from ${names(suffered)}`,
    );
  return `${parts.join('; ')}.`;
}
