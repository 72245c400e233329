import assert from 'node:assert/strict';
import { test } from 'vitest';
import { videoQualityScore } from '../../src/telemetry/quality.js';

// The video score's edge cases, on the formula alone; test/video-score.test.ts scores real calls.

const vga = { width: 640, height: 480, fps: 20 };
const clean = { ...vga, reference: vga, freezeMs: 0, intervalMs: 1000, lossFraction: 0 };

test('more than the reference is no better than the reference', () => {
  assert.equal(videoQualityScore({ ...clean, width: 1280, height: 960, fps: 30 }), 5);
});

test('no picture, no frames, or everything lost scores 1, the bottom of the scale, and never less', () => {
  assert.equal(videoQualityScore({ ...clean, width: 0, height: 0 }), 1);
  assert.equal(videoQualityScore({ ...clean, width: 2, height: 2 }), 1);
  assert.equal(videoQualityScore({ ...clean, fps: 0 }), 1);
  assert.equal(videoQualityScore({ ...clean, freezeMs: 60_000 }), 1);
  assert.ok(videoQualityScore({ ...clean, lossFraction: 1 }) >= 1);
});

test('an unknown reference (zero) judges nothing on that term, rather than dividing by zero', () => {
  assert.equal(videoQualityScore({ ...clean, reference: { width: 0, height: 0, fps: 0 } }), 5);
  assert.equal(videoQualityScore({ ...clean, intervalMs: 0, freezeMs: 10 }), 5);
});

test('out-of-range inputs are clamped: negative loss or freeze time does not raise the score above 5', () => {
  assert.equal(videoQualityScore({ ...clean, lossFraction: -0.5, freezeMs: -100 }), 5);
  assert.equal(videoQualityScore({ ...clean, lossFraction: 2 }), videoQualityScore({ ...clean, lossFraction: 1 }));
});

test('each impairment lowers the score monotonically, and impairments add up', () => {
  for (const [key, values] of [
    ['fps', [20, 15, 10, 5, 1]],
    ['width', [640, 480, 320, 160, 80]],
    ['lossFraction', [0, 0.01, 0.05, 0.1, 0.3]],
    ['freezeMs', [0, 100, 300, 600, 900]],
  ] as const) {
    const scores = values.map((v) => videoQualityScore({ ...clean, [key]: v }));
    for (let i = 1; i < scores.length; i++) assert.ok(scores[i]! < scores[i - 1]!, `${key}: ${scores}`);
  }
  const lowLayer = videoQualityScore({ ...clean, width: 320, height: 240 });
  assert.ok(videoQualityScore({ ...clean, width: 320, height: 240, fps: 5 }) < lowLayer);
});
