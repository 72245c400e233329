/**
 * Vigie browser SDK, bundled to /sdk/vigie-sdk.js (global `Vigie`).
 *
 *   const call = await Vigie.VigieCall.join({ token });
 *   call.on('trackAdded', ({ peerId, track }) => …);
 *   await call.publishCamera(); await call.publishMic();
 */
export { VigieCall, type VigieCallEvents, type JoinOptions, type RemotePeer, type Source } from './VigieCall.js';
export { SignalingClient, SignalingError } from './SignalingClient.js';
