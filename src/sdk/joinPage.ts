/**
 * Script of the /join and /embed pages, bundled to /sdk/join-page.js. It uses
 * the global `Vigie` SDK. In /embed it reports to the parent window with
 * postMessage (events documented in the README), only to an allowed origin.
 */
import type * as VigieSdk from './index.js';

declare global {
  interface Window {
    Vigie: typeof VigieSdk;
    vigieCall?: VigieSdk.VigieCall;
    vigieEvents: Array<{ type: string; data: unknown }>;
    vigieLinkSearch?: string;
  }
}

const body = document.body;
const isEmbed = body.dataset.page === 'embed';
const allowedOrigins: string[] = JSON.parse(body.dataset.embedOrigins ?? '[]');
const statusEl = document.getElementById('status')!;
const tilesEl = document.getElementById('tiles')!;
const listEl = document.getElementById('participants')!;
window.vigieEvents = [];

/** The parent origin, when it is one the tenant allows; postMessage goes nowhere else. */
function parentOrigin(): string | undefined {
  if (!isEmbed || window.parent === window) return undefined;
  const ancestor = (location as Location & { ancestorOrigins?: DOMStringList }).ancestorOrigins?.[0];
  if (ancestor === location.origin) return ancestor;
  return ancestor && allowedOrigins.includes(ancestor) ? ancestor : undefined;
}
const target = parentOrigin();

function report(type: string, data: unknown = {}): void {
  window.vigieEvents.push({ type, data });
  if (target) window.parent.postMessage({ source: 'vigie', type, data }, target);
}

function setStatus(text: string): void {
  statusEl.textContent = text;
}

function tile(id: string, name: string): HTMLElement {
  let el = document.getElementById(`tile-${id}`);
  if (!el) {
    el = document.createElement('div');
    el.id = `tile-${id}`;
    el.className = 'tile';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    const audio = document.createElement('audio');
    audio.autoplay = true;
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name;
    el.append(video, audio, label);
    tilesEl.append(el);
  }
  return el;
}

function renderParticipants(call: VigieSdk.VigieCall): void {
  listEl.replaceChildren(
    ...[{ name: `${call.info.name} (you)` }, ...call.peers.values()].map((p) => {
      const li = document.createElement('li');
      li.textContent = p.name;
      return li;
    }),
  );
}

async function main(): Promise<void> {
  // The page's early script (src/web/earlyJoin.ts) may already have taken the query string out of the address bar.
  const params = new URLSearchParams(window.vigieLinkSearch ?? location.search);
  const token = params.get('token');
  // The token is a credential: keep it out of the address bar and history.
  history.replaceState(null, '', location.pathname);
  if (!token) throw Object.assign(new Error('this link has no token'), { code: 'UNAUTHORIZED' });
  const relayOnly = params.get('relay') === '1';

  const call = await window.Vigie.VigieCall.join({ token, relayOnly });
  window.vigieCall = call;
  setStatus(`In ${call.info.room}`);
  report('joined', { peerId: call.info.peerId, room: call.info.room });
  renderParticipants(call);

  call.on('peerJoined', (p) => {
    renderParticipants(call);
    report('peerJoined', p);
  });
  call.on('peerLeft', (p) => {
    document.getElementById(`tile-${p.peerId}`)?.remove();
    renderParticipants(call);
    report('peerLeft', p);
  });
  call.on('trackAdded', ({ peerId, consumerId, kind, source, track }) => {
    const name = call.peers.get(peerId)?.name ?? 'Guest';
    // A screen share gets its own tile, so the sender's camera stays in view beside it.
    const el = source === 'screen' ? tile(`screen-${consumerId}`, `${name} (screen)`) : tile(peerId, name);
    const media = el.querySelector(kind === 'video' ? 'video' : 'audio') as HTMLMediaElement;
    media.srcObject = new MediaStream([track]);
    void media.play().catch(() => undefined);
    report('trackAdded', { peerId, kind, source });
  });
  call.on('trackRemoved', ({ peerId, consumerId }) => {
    document.getElementById(`tile-screen-${consumerId}`)?.remove();
    report('trackRemoved', { peerId });
  });
  call.on('activeSpeaker', ({ peerId }) => {
    for (const el of tilesEl.querySelectorAll('.tile')) el.classList.toggle('speaking', el.id === `tile-${peerId}`);
    report('activeSpeaker', { peerId });
  });
  call.on('roomClosed', ({ reason }) => {
    setStatus(`Call ended (${reason})`);
    tilesEl.replaceChildren();
    report('roomClosed', { reason });
  });
  call.on('reconnecting', ({ attempt, reason }) => {
    setStatus(`Reconnecting… (attempt ${attempt})`);
    report('reconnecting', { attempt, reason });
  });
  call.on('reconnected', ({ peerId }) => {
    setStatus(`In ${call.info.room}`);
    renderParticipants(call);
    report('reconnected', { peerId });
  });
  call.on('disconnected', (info) => {
    setStatus('Disconnected');
    report('disconnected', info);
  });
  const recordingEl = document.getElementById('recording')!;
  const showRecording = (active: boolean, consentRequired: boolean) => {
    recordingEl.classList.toggle('on', active);
    consentEl.hidden = !(active && consentRequired);
  };
  const consentEl = document.getElementById('consent')!;
  for (const [id, given] of [['consent-yes', true], ['consent-no', false]] as const) {
    document.getElementById(id)!.addEventListener('click', () => {
      consentEl.hidden = true;
      void call.setRecordingConsent(given).then(() => report('recordingConsent', { given }));
    });
  }
  showRecording(call.info.recording.active, call.info.recording.consentRequired);
  call.on('recording', ({ active, consentRequired }) => {
    showRecording(active, consentRequired);
    report(active ? 'recordingStarted' : 'recordingStopped', {});
  });
  // A moderator's mute locks the button (the server refuses to resume the track) until it is lifted.
  const moderatorLock = (kind: 'audio' | 'video', locked: boolean) => {
    const btn = document.getElementById(kind === 'audio' ? 'toggle-mic' : 'toggle-cam') as HTMLButtonElement | null;
    if (!btn) return;
    if (locked) btn.setAttribute('aria-pressed', 'true');
    btn.disabled = locked;
    btn.title = locked ? 'Muted by a moderator' : '';
    btn.classList.toggle('muted-by-moderator', locked);
  };
  call.on('mutedByServer', ({ kind }) => {
    moderatorLock(kind, true);
    report('mutedByServer', { kind });
  });
  call.on('unmutedByServer', ({ kind }) => {
    moderatorLock(kind, false);
    report('unmutedByServer', { kind });
  });
  call.on('tokenRefreshed', ({ expiresAt }) => report('tokenRefreshed', { expiresAt }));
  call.on('serverDraining', (d) => {
    setStatus('The server is restarting; the call will resume by itself');
    report('serverDraining', d);
  });
  call.on('removed', ({ reason }) => {
    setStatus('You were removed from the call');
    tilesEl.replaceChildren();
    report('removed', { reason });
  });
  call.on('error', (e) => report('error', e));

  wireButtons(call);
  if (call.can('publish')) {
    const mine = tile('self', `${call.info.name} (you)`);
    const cam = await call.publishCamera();
    (mine.querySelector('video') as HTMLVideoElement).srcObject = new MediaStream([cam.track!]);
    await call.publishMic();
    report('published', { sources: [...call.producers.keys()] });
  }
}

function wireButtons(call: VigieSdk.VigieCall): void {
  const toggle = (id: string, fn: (on: boolean) => Promise<void>) => {
    const btn = document.getElementById(id)!;
    btn.addEventListener('click', () => {
      const on = btn.getAttribute('aria-pressed') !== 'true';
      btn.setAttribute('aria-pressed', String(on));
      fn(on).catch((e) => report('error', { code: 'CLIENT', message: String(e) }));
    });
  };
  toggle('toggle-mic', (muted) => call.setPaused('mic', muted));
  toggle('toggle-cam', (off) => call.setPaused('camera', off));
  const shareBtn = document.getElementById('share-screen')!;
  toggle('share-screen', async (on) => {
    if (!on) return call.unpublish('screen');
    try {
      const producer = await call.publishScreen();
      // Sharing can also end from the browser's own "Stop sharing" bar.
      producer.track?.addEventListener('ended', () => shareBtn.setAttribute('aria-pressed', 'false'));
    } catch (e) {
      shareBtn.setAttribute('aria-pressed', 'false');
      throw e;
    }
  });
  document.getElementById('leave')!.addEventListener('click', () => {
    void call.leave().then(() => {
      setStatus('You left the call');
      tilesEl.replaceChildren();
      report('left');
    });
  });
}

main().catch((err: Error & { code?: string }) => {
  setStatus(`Could not join: ${err.message}`);
  report('error', { code: err.code ?? 'CLIENT', message: err.message });
});
