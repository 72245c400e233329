import { test } from 'vitest';
import assert from 'node:assert/strict';
import { type StoredIssue, verdictFor } from '../../src/diagnosis/report.js';

/** The verdict of each detector, in words a support agent can read out: whose side, what, when, who suffered. */
const T0 = Date.UTC(2026, 10, 30, 10, 2, 0);
const names: Record<string, string> = { a: 'Alice', b: 'Bob' };
const nameOf = (p: string) => names[p] ?? p;
const issue = (o: Partial<StoredIssue>): StoredIssue => ({
  issueId: 'c/1',
  issue: 'uplink_loss',
  direction: 'uplink',
  kind: 'video',
  participant: 'a',
  peerId: 'pa',
  trackId: 't',
  startedMs: T0,
  endedMs: T0 + 180_000,
  resolution: 'recovered',
  affected: ['b'],
  evidence: {},
  ...o,
});

test('each detector has its own words, and the server is named as the server', () => {
  const cases: Array<[Partial<StoredIssue>, string, string]> = [
    [
      { issue: 'encoder_limited', evidence: { reason: 'cpu' } },
      'a',
      "Alice's computer held back their video encoder (cpu) from 10:02:00 to 10:05:00 UTC; everyone who received it was affected (Bob).",
    ],
    [
      {
        issue: 'uplink_congestion',
        evidence: { layers: 1, sender_top_layers: 2, bitrate_kbps: 74, full_bitrate_kbps: 1210 },
      },
      'a',
      "Alice's uplink became too narrow for their video: they sent 1 of their 2 quality layers (74 kbit/s, down from 1210) from 10:02:00 to 10:05:00 UTC; everyone who received it was affected (Bob).",
    ],
    [
      {
        issue: 'video_frozen',
        direction: 'downlink',
        participant: 'b',
        affected: ['b'],
        evidence: { frozen_ms: 2400 },
      },
      'b',
      "Bob's video froze for 2.4 s from 10:02:00 to 10:05:00 UTC, on their own downlink.",
    ],
    [
      { issue: 'video_frozen', direction: 'both', evidence: { frozen_ms: 12_000, cause: 'ice_restart_failed' } },
      'a',
      "Alice's side froze the video Bob received, for 12 s, from 10:02:00 to 10:05:00 UTC.",
    ],
    [
      {
        issue: 'downlink_congestion',
        direction: 'downlink',
        participant: 'b',
        affected: ['b'],
        evidence: { layer: 0, sender_top_layer: 1 },
      },
      'b',
      "Bob's downlink held their video below the quality the sender sent (layer 0 of 1) from 10:02:00 to 10:05:00 UTC; only Bob was affected.",
    ],
    [
      { issue: 'turn_relay', direction: 'both', affected: ['a'], endedMs: null, resolution: null },
      'a',
      'Alice was connected through the TURN relay since 10:02:00 UTC (still going on) (a restrictive network: more delay).',
    ],
    [
      { issue: 'uplink_jitter', kind: 'audio', evidence: { jitter_ms: 48 } },
      'a',
      "Alice's uplink delivered their audio unevenly (jitter 48 ms) from 10:02:00 to 10:05:00 UTC; everyone who received it was affected (Bob).",
    ],
    [
      {
        issue: 'downlink_jitter',
        kind: 'audio',
        direction: 'downlink',
        participant: 'b',
        affected: ['b'],
        evidence: { jitter_ms: 41 },
      },
      'b',
      "Bob's downlink delivered the audio sent to them unevenly (jitter 41 ms) from 10:02:00 to 10:05:00 UTC; only Bob was affected.",
    ],
    [
      { issue: 'high_rtt', kind: '', direction: 'both', affected: ['a', 'b'], evidence: { rtt_ms: 620 } },
      'a',
      "Alice's connection was slow (620 ms round trip to the server) from 10:02:00 to 10:05:00 UTC, which delayed the conversation with Bob.",
    ],
    [
      { issue: 'ice_restart_failed', direction: 'both', affected: ['a'] },
      'a',
      "Alice's connection was lost and an ICE restart did not bring it back from 10:02:00 to 10:05:00 UTC.",
    ],
    [
      { issue: 'sfu_overload', direction: 'server', participant: '', affected: ['a', 'b'], evidence: { worker: 1 } },
      'b',
      "Bob's own network was fine; Bob suffered from the server's sfu overload (worker 1) from 10:02:00 to 10:05:00 UTC.",
    ],
  ];
  for (const [o, who, expected] of cases) assert.equal(verdictFor(who, [issue(o)], nameOf), expected);
});
