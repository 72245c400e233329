import { test } from 'vitest';
import assert from 'node:assert/strict';
import { estimateMos, videoQualityScore } from '../src/telemetry/quality.js';

test('E-model MOS: a clean path scores high, and loss, jitter and delay each lower it', () => {
  const clean = estimateMos({ lossFraction: 0, jitterMs: 0, rttMs: 0 });
  assert.ok(clean > 4.3 && clean <= 4.5, `clean ${clean}`);
  // G.107's R for no impairment but delay is ~93 → MOS ~4.4; 5% random loss with Bpl = 10 is ~R 61 → MOS ~3.2.
  const lossy = estimateMos({ lossFraction: 0.05, jitterMs: 0, rttMs: 0 });
  assert.ok(lossy > 2.9 && lossy < 3.5, `5% loss ${lossy}`);
  assert.ok(estimateMos({ lossFraction: 0, jitterMs: 60, rttMs: 0 }) < clean);
  assert.ok(
    estimateMos({ lossFraction: 0, jitterMs: 0, rttMs: 600 }) <
      estimateMos({ lossFraction: 0, jitterMs: 0, rttMs: 300 }),
  );
  assert.equal(estimateMos({ lossFraction: 1, jitterMs: 500, rttMs: 2000 }), 1);
  let prev = 5;
  for (let loss = 0; loss <= 0.3; loss += 0.01) {
    const m = estimateMos({ lossFraction: loss, jitterMs: 10, rttMs: 50 });
    assert.ok(m <= prev, 'monotonic in loss');
    prev = m;
  }
});

test('video quality is judged against what the sender means to send: a clean stream scores 5 at any size or rate', () => {
  const vga20 = { width: 640, height: 480, fps: 20 };
  const clean = { ...vga20, reference: vga20, freezeMs: 0, intervalMs: 5000, lossFraction: 0 };
  // The clean call: 640×480 at 20 fps scored 2.86 against a fixed 30 fps and 1080p.
  assert.equal(videoQualityScore(clean), 5);
  const thumb = { width: 320, height: 240, fps: 15 };
  assert.equal(videoQualityScore({ ...clean, ...thumb, reference: thumb }), 5, 'a small layer, sent as meant');

  // The calibration points of docs/operators.md, "Quality scores".
  const near = (v: number, want: number) => assert.ok(Math.abs(v - want) < 0.01, `${v} ≉ ${want}`);
  near(videoQualityScore({ ...clean, width: 320, height: 240 }), 3.6); // one simulcast step down
  near(videoQualityScore({ ...clean, width: 160, height: 120 }), 2.2); // two steps
  near(videoQualityScore({ ...clean, fps: 10 }), 3.64); // half the frames
  near(videoQualityScore({ ...clean, fps: 5 }), 2.74); // a quarter
  near(videoQualityScore({ ...clean, lossFraction: 0.05 }), 4.2);
  near(videoQualityScore({ ...clean, lossFraction: 0.2 }), 3);
  near(videoQualityScore({ ...clean, freezeMs: 1000 }), 4.2);
  assert.equal(videoQualityScore({ ...clean, freezeMs: 5000 }), 1);
});
