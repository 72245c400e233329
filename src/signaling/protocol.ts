import { z } from 'zod';
import { boundedJson, type JsonLimits } from '../boundedJson.js';
import type { ErrorCode, RedirectTarget } from '../errors.js';
import type { Grant } from '../auth/index.js';

/**
 * The signaling protocol over `/ws`. Client → server:
 *   `{ id, method, data }`, answered by `{ id, ok: true, data }` or
 *   `{ id, ok: false, error: { code, message } }`.
 * Server → client notifications: `{ notification: true, method, data }`.
 *
 * Several nodes: a `join` that reaches a node which does not serve the room is
 * answered `{ ok: false, error: { code: 'REDIRECT', message, redirect: { nodeId, url } } }`: the client opens a
 * WebSocket to `url` (the serving node's `/ws`) and sends the same join there. The SDK follows up to
 * MAX_JOIN_REDIRECTS (src/sdk/SignalingClient.ts) hops. A successful join's answer lists, in `nodes`, the
 * signaling URLs of the other live nodes, where the SDK rejoins if this node is gone.
 */

const id = z.string().min(1).max(64);
const count = z
  .number()
  .int()
  .min(0)
  .max(2 ** 53);
const measure = z.number().min(0).max(1e12);

const dtlsParameters = z.object({
  role: z.enum(['auto', 'client', 'server']).optional(),
  fingerprints: z
    .array(
      z.object({
        algorithm: z.enum(['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512']),
        value: z.string().max(256),
      }),
    )
    .min(1)
    .max(8),
});

/*
 * RTP parameters and capabilities are checked here, field by field, as
 * mediasoup's ortc.validateAndNormalize* would (types, ranges, mandatory
 * fields), so a malformed one is the client's INVALID_REQUEST before mediasoup
 * sees it. Objects stay loose: browsers add fields mediasoup ignores.
 */
const uint32 = z.number().int().min(0).max(0xffffffff);
const payloadType = z.number().int().min(0).max(127);
const mimeType = z
  .string()
  .max(64)
  .regex(/^(audio|video)\/[A-Za-z0-9._+-]+$/i, 'must be audio/<codec> or video/<codec>');
const codecParameters = z
  .record(z.string().max(64), z.union([z.string().max(256), z.number()]))
  .refine((p) => p.apt === undefined || typeof p.apt === 'number', { message: 'apt must be a number', path: ['apt'] })
  .optional();
const rtcpFeedback = z
  .array(z.object({ type: z.string().min(1).max(64), parameter: z.string().max(64).optional() }).loose())
  .max(32)
  .optional();
const clockRate = z.number().int().min(1).max(1_000_000);
const channels = z.number().int().min(1).max(32).optional();

const rtpParameters = z
  .object({
    mid: z.string().max(32).optional(),
    codecs: z
      .array(
        z.object({ mimeType, payloadType, clockRate, channels, parameters: codecParameters, rtcpFeedback }).loose(),
      )
      .min(1)
      .max(16)
      .refine(
        (codecs) => new Set(codecs.map((c) => c.payloadType)).size === codecs.length,
        'payload types must be distinct',
      ),
    headerExtensions: z
      .array(
        z
          .object({
            uri: z.string().min(1).max(256),
            id: z.number().int().min(1).max(255),
            encrypt: z.boolean().optional(),
            parameters: codecParameters,
          })
          .loose(),
      )
      .max(32)
      .optional(),
    encodings: z
      .array(
        z
          .object({
            ssrc: uint32.optional(),
            rid: z.string().max(32).optional(),
            codecPayloadType: payloadType.optional(),
            rtx: z.object({ ssrc: uint32 }).loose().optional(),
            dtx: z.boolean().optional(),
            scalabilityMode: z.string().max(16).optional(),
            maxBitrate: uint32.optional(),
          })
          .loose(),
      )
      .max(8)
      .optional(),
    rtcp: z
      .object({ cname: z.string().max(256).optional(), reducedSize: z.boolean().optional() })
      .loose()
      .optional(),
    msid: z.string().max(256).optional(),
  })
  .loose();

const rtpCapabilities = z
  .object({
    codecs: z
      .array(
        z
          .object({
            kind: z.enum(['audio', 'video']).optional(),
            mimeType,
            preferredPayloadType: payloadType.optional(),
            clockRate,
            channels,
            parameters: codecParameters,
            rtcpFeedback,
          })
          .loose(),
      )
      .max(64),
    headerExtensions: z
      .array(
        z
          .object({
            kind: z.enum(['audio', 'video']),
            uri: z.string().min(1).max(256),
            preferredId: z.number().int().min(1).max(255),
            preferredEncrypt: z.boolean().optional(),
            direction: z.enum(['sendrecv', 'sendonly', 'recvonly', 'inactive']).optional(),
          })
          .loose(),
      )
      .max(64)
      .optional(),
  })
  .loose();

export const REQUESTS = {
  join: z.object({
    token: z.string().min(1).max(8192),
    tenant: z.string().max(63).optional(),
    room: z.string().max(64).optional(),
    /** The name the participant typed on the pre-join screen; used only when the token carries none. */
    name: z.string().trim().min(1).max(128).optional(),
    /**
     * Create the receive transport with the join and send it in the answer (when the token allows subscribing), so
     * that the first consume does not wait for a createWebRtcTransport round trip.
     */
    recvTransport: z.boolean().optional(),
  }),
  getRouterRtpCapabilities: z.object({}).strict(),
  createWebRtcTransport: z.object({ direction: z.enum(['send', 'recv']) }),
  connectTransport: z.object({ transportId: id, dtlsParameters }),
  restartIce: z.object({ transportId: id }),
  produce: z.object({
    transportId: id,
    kind: z.enum(['audio', 'video']),
    rtpParameters,
    source: z.enum(['camera', 'mic', 'screen', 'screen-audio']),
  }),
  closeProducer: z.object({ producerId: id }),
  pauseProducer: z.object({ producerId: id }),
  resumeProducer: z.object({ producerId: id }),
  consume: z.object({ transportId: id, producerId: id, rtpCapabilities }),
  pauseConsumer: z.object({ consumerId: id }),
  resumeConsumer: z.object({ consumerId: id }),
  setPreferredLayers: z.object({
    consumerId: id,
    spatialLayer: z.number().int().min(0).max(3),
    temporalLayer: z.number().int().min(0).max(3).optional(),
  }),
  leave: z.object({}).strict(),
  /** The client's heartbeat: browsers cannot send WebSocket pings, so the SDK sends this and expects the answer. */
  ping: z.object({}).strict(),
  startRecording: z.object({}).strict(),
  stopRecording: z.object({}).strict(),
  recordingConsent: z.object({ given: z.boolean() }),
  /**
   * The browser decoded the first video frame, or played the first audio, of this consumer: the join funnel's last
   * steps. Sent once per kind and join, at the moment it is seen; the gateway stamps it on arrival.
   */
  mediaStarted: z.object({ consumerId: id }),
  clientStats: z.object({
    tracks: z
      .array(
        z.object({
          kind: z.enum(['audio', 'video']),
          direction: z.enum(['outbound', 'inbound']),
          producerId: id.optional(),
          consumerId: id.optional(),
          ssrc: z.number().int().min(0).max(0xffffffff),
          bytes: count,
          packets: count,
          packetsLost: z
            .number()
            .int()
            .min(-(2 ** 31))
            .max(2 ** 53),
          jitterMs: measure.optional(),
          jitterBufferDelayMs: measure.optional(),
          freezeCount: count.optional(),
          totalFreezesDurationMs: measure.optional(),
          concealedSamples: count.optional(),
          totalSamplesReceived: count.optional(),
          framesDecoded: count.optional(),
          framesPerSecond: z.number().min(0).max(1000).optional(),
          frameWidth: z.number().int().min(0).max(16384).optional(),
          frameHeight: z.number().int().min(0).max(16384).optional(),
          qualityLimitationReason: z.enum(['none', 'cpu', 'bandwidth', 'other']).optional(),
          /** Outbound video: the sender's captured frames, and how much this layer scales them down. */
          captureFps: z.number().min(0).max(1000).optional(),
          captureWidth: z.number().int().min(0).max(16384).optional(),
          captureHeight: z.number().int().min(0).max(16384).optional(),
          scaleResolutionDownBy: z.number().min(1).max(1024).optional(),
        }),
      )
      .max(64),
    candidatePair: z
      .object({
        candidateType: z.enum(['host', 'srflx', 'prflx', 'relay']).optional(),
        protocol: z.enum(['udp', 'tcp']).optional(),
        rttMs: measure.optional(),
        availableOutgoingBitrate: measure.optional(),
      })
      .optional(),
  }),
} as const;

export type Method = keyof typeof REQUESTS;
export type RequestData<M extends Method> = z.infer<(typeof REQUESTS)[M]>;

/** The grant each method needs, beyond having joined. */
export const REQUIRED_GRANT: Partial<Record<Method, Grant>> = {
  produce: 'publish',
  closeProducer: 'publish',
  pauseProducer: 'publish',
  resumeProducer: 'publish',
  consume: 'subscribe',
  pauseConsumer: 'subscribe',
  resumeConsumer: 'subscribe',
  setPreferredLayers: 'subscribe',
  startRecording: 'record',
  stopRecording: 'record',
};

/**
 * Request data is bounded before any method schema sees it: the loose parts of
 * RTP parameters and capabilities reach mediasoup, which clones them
 * recursively. Generous for real browsers (Chrome's capabilities are about 6
 * levels and a few hundred values); the frame size is limited separately.
 */
export const REQUEST_DATA_LIMITS: JsonLimits = {
  maxDepth: 16,
  maxNodes: 10_000,
  maxStringLength: 8192,
  maxBytes: 1 << 20,
};

export const envelopeSchema = z.object({
  id: z.union([z.number().int().nonnegative(), z.string().min(1).max(64)]),
  method: z.string().min(1).max(64),
  data: boundedJson(REQUEST_DATA_LIMITS).optional(),
});

export type ResponseFrame =
  | { id: number | string | null; ok: true; data: unknown }
  | {
      id: number | string | null;
      ok: false;
      error: { code: ErrorCode; message: string; redirect?: RedirectTarget };
    };

export interface NotificationFrame {
  notification: true;
  method: string;
  data: Record<string, unknown>;
}

export const NOTIFICATIONS = [
  'peerJoined',
  'peerLeft',
  'newProducer',
  'producerClosed',
  'producerPaused',
  'producerResumed',
  'consumerClosed',
  'consumerScore',
  'consumerLayersChanged',
  'activeSpeaker',
  'roomClosed',
  'sessionReplaced',
  'removed',
  'mutedByServer',
  'unmutedByServer',
  'tokenRefreshed',
  'serverDraining',
  'recordingStarted',
  'recordingStopped',
] as const;
