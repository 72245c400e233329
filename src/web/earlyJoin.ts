import { createHash } from 'node:crypto';

/** The call page's bundles, in the order they run: the SDK, then the page's own script that uses it. */
export const CALL_PAGE_SCRIPTS = ['/sdk/vigie-sdk.js', '/sdk/join-page.js'];

/**
 * The call page's first script, inline in its <head>: it opens the signaling
 * WebSocket and sends `join` with the link's token while the browser fetches
 * the bundles (preloaded by <link> tags), and only then adds them to the page.
 * Compiling and running the SDK bundle (240 kB, mostly mediasoup-client) holds
 * the page's main thread; a socket's `open` event, and so the join, would wait
 * behind it. Without this script the page connected only once both bundles had
 * run, later than a minimal mediasoup page (bench/join-page.ts).
 *
 * The bundles are added once the socket is open and the join sent, or has
 * failed (the SDK then connects by itself), and at the latest after 2 s, so
 * that a network that holds WebSocket handshakes does not hold the page.
 *
 * It also takes the token out of the address bar, before anything else runs;
 * the link's query string stays readable as `window.vigieLinkSearch`.
 *
 * It asks for the receive transport with the join, as the SDK does (the page subscribes to everyone).
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
  var loaded = false;
  function load() {
    if (loaded) return;
    loaded = true;
    var add = function () {
      ${JSON.stringify(CALL_PAGE_SCRIPTS)}.forEach(function (src) {
        var script = document.createElement('script');
        script.src = src;
        script.async = false;
        document.body.appendChild(script);
      });
    };
    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', add);
    else add();
  }
  var search = location.search;
  var token = new URLSearchParams(search).get('token');
  // The token is a credential: out of the address bar and history at once. The page's script reads the link's
  // parameters from here.
  window.vigieLinkSearch = search;
  history.replaceState(null, '', location.pathname);
  if (!token || typeof WebSocket !== 'function') return load();
  var socket = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  var early = (window.vigieEarlyJoin = { socket: socket, token: token, buffer: [] });
  socket.addEventListener('message', function (ev) { if (early.buffer) early.buffer.push(String(ev.data)); });
  socket.addEventListener('open', function () {
    socket.send(JSON.stringify({ id: 0, method: 'join', data: { token: token, recvTransport: true } }));
    load();
  });
  socket.addEventListener('error', load);
  socket.addEventListener('close', load);
  setTimeout(load, 2000);
})();`;

/** The CSP source that allows this one inline script and no other. */
export const EARLY_JOIN_CSP_SOURCE = `'sha256-${createHash('sha256').update(EARLY_JOIN_SCRIPT).digest('base64')}'`;
