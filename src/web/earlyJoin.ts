import { createHash } from 'node:crypto';

/**
 * The call page's first script, inline in its <head>: it opens the signaling
 * WebSocket and sends `join` with the link's token while the browser is
 * still fetching and compiling the SDK bundle (240 kB, mostly mediasoup-client).
 * Without it the page only connected once both bundles had run, tens of
 * milliseconds after a minimal mediasoup page would have (bench/join-page.ts).
 *
 * What it leaves on `window.vigieEarlyJoin` ({ socket, token, buffer }) is
 * taken by `VigieCall.join` for the same token (src/sdk/VigieCall.ts,
 * `takeEarlyJoin`), which answers request id 0 from the buffered messages.
 * The id, the global's name and the message format are a contract with that
 * function; test/join-page-early.test.ts checks that the page uses this path.
 *
 * A page that must not join before the user says so (a pre-join screen) does
 * not include it.
 */
export const EARLY_JOIN_SCRIPT = `(function () {
  var token = new URLSearchParams(location.search).get('token');
  if (!token || typeof WebSocket !== 'function') return;
  var socket = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  var early = (window.vigieEarlyJoin = { socket: socket, token: token, buffer: [] });
  socket.addEventListener('message', function (ev) { if (early.buffer) early.buffer.push(String(ev.data)); });
  socket.addEventListener('open', function () { socket.send(JSON.stringify({ id: 0, method: 'join', data: { token: token } })); });
})();`;

/** The CSP source that allows this one inline script and no other. */
export const EARLY_JOIN_CSP_SOURCE = `'sha256-${createHash('sha256').update(EARLY_JOIN_SCRIPT).digest('base64')}'`;
