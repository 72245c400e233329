/**
 * Quality scores computed per sampling interval.
 *
 * Audio: estimated MOS from the ITU-T G.107 E-model, simplified. Only the terms
 * that network measurements drive are kept; the rest take G.107's defaults.
 *
 *   R    = R0 - Id - Ie,eff                         (G.107 §7.1, eq. 7-1, with Is = 0 and A = 0)
 *   R0   = 93.2                                     (G.107 default values, Table 1)
 *   d    = RTT / 2 + 2 · jitter + 20 ms             (one-way delay; the jitter buffer is sized to 2 × jitter,
 *                                                    and 20 ms is Opus' frame)
 *   Id   = 0.024 · d + 0.11 · (d − 177.3) · H(d − 177.3)
 *                                                   (the delay impairment as simplified by Cole & Rosenbluth,
 *                                                    "Voice over IP performance monitoring", ACM CCR 2001)
 *   Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)
 *                                                   (G.107 §7.4, eq. 7-29; Ppl is the loss in %, BurstR = 1 for
 *                                                    random loss)
 *   Ie = 0, Bpl = 10 for Opus                       (G.113 Appendix I has no entry for Opus; these are the usual
 *                                                    values for a wideband codec with packet loss concealment)
 *   MOS = 1 + 0.035 R + R (R − 60)(100 − R) · 7·10⁻⁶, clamped to [1, 4.5]   (G.107 Annex B, eq. B-4)
 *
 * Video: a 1–5 score from what viewers notice most: resolution, frame rate and
 * freezes. It is a heuristic that follows the shape of ITU-T P.1203.1: quality
 * grows with the log of the pixel count and sub-linearly with the frame rate,
 * and stalling is penalized in proportion to the time it takes.
 *
 *   VQ = 1 + 4 · Res · Fps · (1 − Freeze)
 *   Res    = clamp(ln(pixels / 19 200) / ln(2 073 600 / 19 200), 0.1, 1)   (160×120 → 0.1 floor, 1080p → 1)
 *   Fps    = clamp(fps / 30, 0, 1)^0.6
 *   Freeze = clamp(freeze time / interval, 0, 1)
 */

export interface AudioNetwork {
  /** Fraction of packets lost over the interval, 0..1. */
  lossFraction: number;
  jitterMs: number;
  rttMs: number;
}

export function estimateMos({ lossFraction, jitterMs, rttMs }: AudioNetwork): number {
  const d = Math.max(0, rttMs) / 2 + 2 * Math.max(0, jitterMs) + 20;
  const id = 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0);
  const ppl = Math.min(100, Math.max(0, lossFraction * 100));
  const ie = 0;
  const bpl = 10;
  const ieEff = ie + ((95 - ie) * ppl) / (ppl / 1 + bpl);
  const r = 93.2 - id - ieEff;
  if (r <= 0) return 1;
  if (r >= 100) return 4.5;
  const mos = 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6;
  return Math.min(4.5, Math.max(1, mos));
}

export interface VideoObservation {
  width: number;
  height: number;
  fps: number;
  /** Time spent frozen during the interval, ms. */
  freezeMs: number;
  intervalMs: number;
}

export function videoQualityScore({ width, height, fps, freezeMs, intervalMs }: VideoObservation): number {
  const pixels = Math.max(1, width * height);
  const res = Math.min(1, Math.max(0.1, Math.log(pixels / 19_200) / Math.log(2_073_600 / 19_200)));
  const rate = Math.min(1, Math.max(0, fps / 30)) ** 0.6;
  const freeze = intervalMs > 0 ? Math.min(1, Math.max(0, freezeMs / intervalMs)) : 0;
  return 1 + 4 * res * rate * (1 - freeze);
}
