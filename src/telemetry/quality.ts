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
 * Video: a 1–5 score of how much of what the sender means to send a viewer
 * gets: judged against the sender's own capture and layer, not against a fixed
 * 30 fps and 1080p, so that a clean call scores as clean whatever camera it
 * uses. The terms follow the shape of ITU-T P.1203.1 (quality grows with the
 * log of the pixel count and sub-linearly with the frame rate; stalling costs
 * in proportion to its time); the constants are calibrated on the impairments
 * that matter to an operator (docs/operators.md, "Quality scores").
 *
 *   VQ     = 1 + 4 · Res · Fps · Loss · (1 − Freeze)
 *   Res    = clamp(1 + 0.175 · log2(pixels / reference pixels), 0, 1)   (a quarter of the pixels, one simulcast
 *                                                                     step down, → 0.65)
 *   Fps    = clamp(fps / reference fps, 0, 1)^0.6                       (a quarter of the frames → 0.44)
 *   Loss   = 20 / (20 + loss in %)                                      (the form of G.107 eq. 7-29 with Bpl = 20:
 *                                                                     NACK repairs most video loss; 5% → 0.8)
 *   Freeze = clamp(freeze time / interval, 0, 1)
 *
 * The reference is the sender's captured frame rate, and the size of the layer
 * the stream is meant to carry: for a viewer, the sender's top layer (a lower
 * layer, whatever the reason, is less picture); for the sender's upload, the
 * layer's own size (a layer the encoder shrinks is a sender that degrades).
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

/** What the sender means a stream to carry: its captured frame rate and the size of the layer. */
export interface VideoReference {
  width: number;
  height: number;
  fps: number;
}

export interface VideoObservation {
  width: number;
  height: number;
  fps: number;
  reference: VideoReference;
  /** Time spent frozen during the interval, ms (0 when unknown: only receivers measure it). */
  freezeMs: number;
  intervalMs: number;
  /** Fraction of packets lost over the interval, 0..1. */
  lossFraction: number;
}

const clamp01 = (v: number) => Math.min(1, Math.max(0, v));

export function videoQualityScore(o: VideoObservation): number {
  const pixels = Math.max(0, o.width * o.height);
  const refPixels = o.reference.width * o.reference.height;
  // A frame of zero pixels is no picture at all: log2(0) is −∞, and the clamp makes it 0.
  const res = refPixels > 0 ? clamp01(1 + 0.175 * Math.log2(pixels / refPixels)) : 1;
  const rate = o.reference.fps > 0 ? clamp01(o.fps / o.reference.fps) ** 0.6 : 1;
  const loss = 20 / (20 + clamp01(o.lossFraction) * 100);
  const freeze = o.intervalMs > 0 ? clamp01(o.freezeMs / o.intervalMs) : 0;
  return 1 + 4 * res * rate * loss * (1 - freeze);
}
