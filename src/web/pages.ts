import type { VigieError } from '../errors.js';
import { escapeHtml } from '../html.js';
import { CALL_PAGE_SCRIPTS, EARLY_JOIN_SCRIPT } from './earlyJoin.js';

export type PageKind = 'join' | 'embed';

const STYLE = `
  :root { color-scheme: dark; font-family: system-ui, sans-serif; }
  body { margin: 0; background: #111418; color: #e8eaed; }
  header { display: flex; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #1c2026; }
  header h1 { font-size: 1rem; margin: 0; flex: 1; }
  #status { font-size: .85rem; opacity: .8; }
  #recording { display: none; color: #ff5c5c; font-weight: 600; }
  #recording.on { display: inline; }
  main { display: flex; gap: 1rem; padding: 1rem; }
  #tiles { flex: 1; display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: .75rem; }
  .tile { position: relative; background: #000; border-radius: 8px; overflow: hidden; aspect-ratio: 4 / 3; border: 2px solid transparent; }
  .tile.speaking { border-color: #4caf50; }
  .tile video { width: 100%; height: 100%; object-fit: cover; }
  .tile .name { position: absolute; left: .5rem; bottom: .5rem; background: #000a; padding: .1rem .4rem; border-radius: 4px; font-size: .85rem; }
  aside { width: 220px; }
  aside ul { list-style: none; padding: 0; margin: 0; }
  aside li { padding: .25rem 0; }
  button { background: #2d333b; color: inherit; border: 1px solid #444c56; border-radius: 6px; padding: .3rem .7rem; cursor: pointer; }
  button[aria-pressed="true"] { background: #8b2d2d; }
  .embed aside { display: none; }
  .error { max-width: 40rem; margin: 4rem auto; padding: 1rem 1.5rem; background: #2a1d1d; border-radius: 8px; }
`;


/**
 * The call page. Its script reads the token from the URL, then removes it from the address bar.
 * Unless `earlyJoin` is false (a page that waits for the user before joining), the first script
 * in <head> connects and joins while the bundles download, then adds them (see earlyJoin.ts);
 * otherwise they are plain script tags at the end of <body>.
 */
export function callPage(kind: PageKind, opts: { embedOrigins: string[]; earlyJoin?: boolean }): string {
  const early = opts.earlyJoin !== false;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
${early ? `${CALL_PAGE_SCRIPTS.map((src) => `<link rel="preload" href="${src}" as="script">`).join('\n')}\n<script>${EARLY_JOIN_SCRIPT}</script>` : ''}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Vigie call</title>
<style>${STYLE}</style>
</head>
<body class="${kind}" data-page="${kind}" data-embed-origins="${escapeHtml(JSON.stringify(opts.embedOrigins))}">
<header>
  <h1>Vigie</h1>
  <span id="recording" role="status" aria-live="polite">&#9679; Recording</span>
  <span id="status" role="status" aria-live="polite">Connecting…</span>
  <span id="consent" hidden>This call is recorded. Do you agree to be recorded?
    <button id="consent-yes" type="button">I agree</button> <button id="consent-no" type="button">I refuse</button></span>
  <button id="toggle-mic" type="button" aria-pressed="false">Mute</button>
  <button id="toggle-cam" type="button" aria-pressed="false">Camera off</button>
  <button id="share-screen" type="button" aria-pressed="false">Share screen</button>
  <button id="leave" type="button">Leave</button>
</header>
<main>
  <section id="tiles" aria-label="Participants' video"></section>
  <aside><h2>In the room</h2><ul id="participants"></ul></aside>
</main>
${early ? '' : CALL_PAGE_SCRIPTS.map((src) => `<script src="${src}"></script>`).join('\n')}
</body>
</html>`;
}

export function errorPage(err: VigieError | null): string {
  const body = err
    ? `<h1>Cannot join</h1><p>${escapeHtml(err.message)}</p><p><code>${err.code}</code></p>`
    : `<h1>Vigie gateway</h1><p>Open a join link (<code>/join?token=…</code>) to enter a call.</p>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Vigie</title><style>${STYLE}</style></head><body><div class="error">${body}</div></body></html>`;
}
