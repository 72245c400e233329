import type { VigieError } from '../errors.js';
import { escapeHtml } from '../html.js';
import { type Language, errorText, t } from './i18n.js';
import { CALL_PAGE_SCRIPTS, EARLY_JOIN_SCRIPT } from './earlyJoin.js';

export type PageKind = 'join' | 'embed';

const STYLE = `
  :root { color-scheme: dark; font-family: system-ui, sans-serif; }
  body { margin: 0; background: #111418; color: #e8eaed; }
  header { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; padding: .5rem 1rem; background: #1c2026; }
  header h1 { font-size: 1rem; margin: 0; flex: 1; }
  #status { font-size: .85rem; }
  #recording { display: none; color: #ff7b7b; font-weight: 600; }
  #recording.on { display: inline; }
  #controls { display: flex; gap: .5rem; }
  main { display: flex; gap: 1rem; padding: 1rem; }
  #call { display: flex; flex: 1; gap: 1rem; }
  #call[hidden], #controls[hidden], #prejoin[hidden] { display: none; }
  #tiles { flex: 1; display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: .75rem; }
  .tile { position: relative; background: #000; border-radius: 8px; overflow: hidden; aspect-ratio: 4 / 3;
    border: 3px solid transparent; margin: 0; }
  .tile.speaking { border-color: #4caf50; }
  .tile video { width: 100%; height: 100%; object-fit: cover; }
  .tile .name { position: absolute; left: .5rem; bottom: .5rem; background: #000c; padding: .1rem .4rem;
    border-radius: 4px; font-size: .85rem; }
  .tile .speaking-badge { display: none; align-items: center; gap: .3rem; position: absolute; right: .5rem; top: .5rem;
    background: #1b5e20; padding: .1rem .4rem; border-radius: 4px; font-size: .85rem; }
  .tile .speaking-badge svg { width: 1em; height: 1em; fill: currentColor; }
  .tile.speaking .speaking-badge { display: inline-flex; }
  aside { width: 220px; }
  aside h2 { font-size: 1rem; }
  aside ul { list-style: none; padding: 0; margin: 0; }
  aside li { padding: .25rem 0; }
  button, select, input { font: inherit; background: #2d333b; color: inherit; border: 1px solid #6e7781;
    border-radius: 6px; padding: .3rem .7rem; }
  button { cursor: pointer; }
  button[aria-pressed="true"] { background: #8b2d2d; }
  :focus-visible { outline: 3px solid #ffd54f; outline-offset: 2px; }
  #prejoin { width: min(100%, 28rem); margin: 0 auto; display: grid; gap: .6rem; }
  #prejoin p { margin: 0; font-size: .9rem; }
  #join-button { justify-self: start; padding: .5rem 1.5rem; background: #1f6feb; border-color: #1f6feb; color: #fff; }
  #prejoin h2 { margin: 0; font-size: 1.25rem; }
  #preview { width: min(100%, 28rem); aspect-ratio: 4 / 3; background: #000; border-radius: 8px; object-fit: cover; }
  #prejoin label { display: grid; gap: .25rem; }
  #device-messages p { margin: 0; padding: .5rem .75rem; background: #3a2e12; border-radius: 6px; }
  #consent { position: fixed; inset: 30% auto auto 50%; transform: translateX(-50%); max-width: 30rem;
    padding: 1rem 1.5rem; background: #1c2026; border: 2px solid #ffd54f; border-radius: 8px; z-index: 10; }
  #consent h2 { margin-top: 0; font-size: 1.1rem; }
  .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%);
    white-space: nowrap; }
  .embed aside { display: none; }
  .error { max-width: 40rem; margin: 4rem auto; padding: 1rem 1.5rem; background: #2a1d1d; border-radius: 8px; }
`;

/** The pre-join screen of /join: preview, device choice, the name when the token has none, and "Join". */
function prejoinSection(lang: Language, askName: boolean): string {
  const name = askName
    ? `<label for="name-input">${t(lang, 'yourName')}<input id="name-input" name="name" autocomplete="name"
      maxlength="128" required aria-describedby="name-hint"></label>
    <p id="name-hint">${t(lang, 'nameRequired')}</p>`
    : '';
  return `<form id="prejoin" aria-labelledby="prejoin-title" novalidate>
    <h2 id="prejoin-title">${t(lang, 'prejoinTitle')}</h2>
    <video id="preview" aria-label="${t(lang, 'preview')}" autoplay muted playsinline></video>
    <div id="device-messages" role="status" aria-live="polite"></div>
    <label for="camera-select">${t(lang, 'camera')}<select id="camera-select"></select></label>
    <label for="mic-select">${t(lang, 'microphone')}<select id="mic-select"></select></label>
    ${name}
    <button id="join-button" type="submit" disabled>${t(lang, 'join')}</button>
  </form>`;
}

/**
 * The call page, in `lang`. Its script reads the token from the URL, then removes it from the address bar.
 * /join opens on the pre-join screen and joins on the click on "Join"; /embed joins at once (its host application
 * has its own lobby), so its first script in <head> connects and joins while the bundles download, then adds them
 * (see earlyJoin.ts). A page that waits for the user has plain script tags at the end of <body>.
 */
export function callPage(kind: PageKind, opts: { embedOrigins: string[]; lang: Language; askName: boolean }): string {
  const { lang } = opts;
  const prejoin = kind === 'join';
  const early = !prejoin;
  const earlyJoin = early
    ? `${CALL_PAGE_SCRIPTS.map((src) => `<link rel="preload" href="${src}" as="script">`).join('\n')}\n` +
      `<script>${EARLY_JOIN_SCRIPT}</script>`
    : '';
  return `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
${earlyJoin}
<meta name="viewport" content="width=device-width, initial-scale=1">
${NO_FAVICON}
<title>${t(lang, 'title')}</title>
<style>${STYLE}</style>
</head>
<body class="${kind}" data-page="${kind}" data-embed-origins="${escapeHtml(JSON.stringify(opts.embedOrigins))}">
<header>
  <h1>Vigie</h1>
  <span id="recording">&#9679; ${t(lang, 'recording')}</span>
  <span id="status" role="status" aria-live="polite">${prejoin ? '' : t(lang, 'connecting')}</span>
  <div id="controls" role="group" aria-label="${t(lang, 'controls')}"${prejoin ? ' hidden' : ''}>
    <button id="toggle-mic" type="button" aria-pressed="false">${t(lang, 'mute')}</button>
    <button id="toggle-cam" type="button" aria-pressed="false">${t(lang, 'cameraOff')}</button>
    <button id="share-screen" type="button" aria-pressed="false">${t(lang, 'shareScreen')}</button>
    <button id="leave" type="button">${t(lang, 'leave')}</button>
  </div>
</header>
<div id="announcer" class="visually-hidden" aria-live="assertive" aria-atomic="true"></div>
<div id="consent" role="dialog" aria-modal="true" aria-labelledby="consent-title" aria-describedby="consent-question"
  tabindex="-1" hidden>
  <h2 id="consent-title">${t(lang, 'consentTitle')}</h2>
  <p id="consent-question">${t(lang, 'consentQuestion')}</p>
  <button id="consent-yes" type="button">${t(lang, 'consentYes')}</button>
  <button id="consent-no" type="button">${t(lang, 'consentNo')}</button>
</div>
<main>
  ${prejoin ? prejoinSection(lang, opts.askName) : ''}
  <div id="call"${prejoin ? ' hidden' : ''}>
    <section id="tiles" aria-label="${t(lang, 'participantsVideo')}"></section>
    <aside aria-labelledby="participants-title"><h2 id="participants-title">${t(lang, 'inTheRoom')}</h2>
      <ul id="participants"></ul></aside>
  </div>
</main>
${early ? '' : CALL_PAGE_SCRIPTS.map((src) => `<script src="${src}"></script>`).join('\n')}
</body>
</html>`;
}

/**
 * An empty icon, given in the page: without one, every browser asks for `/favicon.ico`, and the 404 it gets is the
 * first error a new user sees in the console of a call that works.
 */
const NO_FAVICON = '<link rel="icon" href="data:,">';

/** The page shown instead of a call: a refused link (by its error code, in `lang`), or the gateway's front page. */
export function errorPage(err: VigieError | null, lang: Language): string {
  const body = err
    ? `<h1>${t(lang, 'cannotJoin')}</h1><p>${escapeHtml(errorText(lang, err.code))}</p><p><code>${err.code}</code></p>`
    : `<h1>${t(lang, 'gatewayTitle')}</h1><p>${escapeHtml(t(lang, 'gatewayHint'))}</p>`;
  return (
    `<!doctype html><html lang="${lang}"><head><meta charset="utf-8">${NO_FAVICON}<title>Vigie</title>` +
    `<style>${STYLE}</style></head><body><main class="error">${body}</main></body></html>`
  );
}
