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

test('video quality: resolution, frame rate and freezes', () => {
  const hd = videoQualityScore({ width: 1920, height: 1080, fps: 30, freezeMs: 0, intervalMs: 5000 });
  assert.equal(hd, 5);
  const vga = videoQualityScore({ width: 640, height: 480, fps: 30, freezeMs: 0, intervalMs: 5000 });
  assert.ok(vga < hd && vga > 3, `vga ${vga}`);
  assert.ok(videoQualityScore({ width: 640, height: 480, fps: 10, freezeMs: 0, intervalMs: 5000 }) < vga);
  assert.ok(videoQualityScore({ width: 640, height: 480, fps: 30, freezeMs: 2500, intervalMs: 5000 }) < vga);
  assert.equal(videoQualityScore({ width: 640, height: 480, fps: 30, freezeMs: 5000, intervalMs: 5000 }), 1);
});
