/**
 * Script of the /join and /embed pages, bundled to /sdk/join-page.js. It uses
 * the global `Vigie` SDK. In /embed it reports to the parent window with
 * postMessage (events documented in the README), only to an allowed origin.
 * /join first shows the pre-join screen (preview, devices, name) and joins on
 * "Join". Every word comes from src/web/i18n.ts, in the page's `<html lang>`.
 */
import { errorText, isLanguage, t, type Language } from '../web/i18n.js';
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
const announcerEl = document.getElementById('announcer')!;
const htmlLang = document.documentElement.lang;
const lang: Language = isLanguage(htmlLang) ? htmlLang : 'en';
const say = (key: Parameters<typeof t>[1], vars?: Record<string, string | number>) => t(lang, key, vars);
window.vigieEvents = [];

/**
 * The origins postMessage may address: the parent's. Chromium and Safari name it in
 * location.ancestorOrigins, and it is used when it is allowed. Firefox has no
 * ancestorOrigins, so there the message is addressed to each origin the page's CSP
 * frame-ancestors lets frame it (its own and the tenant's): that CSP guarantees the
 * parent is one of them, and the browser delivers a message only when the target
 * origin is the parent's, so it reaches the parent and nobody else. Never '*'.
 */
function parentOrigins(): string[] {
  if (!isEmbed || window.parent === window) return [];
  const framers = [location.origin, ...allowedOrigins];
  const ancestors = (location as Location & { ancestorOrigins?: DOMStringList }).ancestorOrigins;
  if (!ancestors) return framers;
  const parent = ancestors[0];
  return parent && framers.includes(parent) ? [parent] : [];
}
const targets = parentOrigins();

function report(type: string, data: unknown = {}): void {
  window.vigieEvents.push({ type, data });
  for (const origin of targets) window.parent.postMessage({ source: 'vigie', type, data }, origin);
}

function setStatus(text: string): void {
  statusEl.textContent = text;
}

/** Read out at once by screen readers (an assertive live region that is always in the page). */
function announce(text: string): void {
  announcerEl.textContent = text;
}

type DeviceKind = 'camera' | 'microphone';

/** Why a device cannot be used, in words that say what to do: refused, missing, or failing. */
function deviceProblem(kind: DeviceKind, err: unknown): string {
  const name = (err as { name?: string }).name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError')
    return say(kind === 'camera' ? 'cameraRefused' : 'micRefused');
  if (name === 'NotFoundError' || name === 'OverconstrainedError')
    return say(kind === 'camera' ? 'cameraMissing' : 'micMissing');
  return say('deviceFailed', { device: say(kind), reason: name || String(err) });
}

/** The tile of the active speaker, which may be named before its tile exists (a newcomer is told at once). */
let speakingTileId: string | undefined;

function tile(id: string, name: string): HTMLElement {
  let el = document.getElementById(`tile-${id}`);
  if (!el) {
    el = document.createElement('div');
    el.id = `tile-${id}`;
    el.className = el.id === speakingTileId ? 'tile speaking' : 'tile';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    video.setAttribute('aria-label', name);
    const audio = document.createElement('audio');
    audio.autoplay = true;
    const label = document.createElement('span');
    label.className = 'name';
    label.textContent = name;
    // The active speaker is shown in words too, not by the border's colour alone.
    const speaking = document.createElement('span');
    speaking.className = 'speaking-badge';
    // A drawn loudspeaker: emoji fonts are not everywhere.
    speaking.innerHTML =
      '<svg aria-hidden="true" viewBox="0 0 24 24">' +
      '<path d="M3 9v6h4l5 5V4L7 9H3zm13.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4z' +
      'M14 3.2v2.1a7 7 0 0 1 0 13.4v2.1a9 9 0 0 0 0-17.6z"/>' +
      '</svg>';
    speaking.append(say('speaking'));
    el.append(video, audio, label, speaking);
    tilesEl.append(el);
  }
  return el;
}

function renderParticipants(call: VigieSdk.VigieCall): void {
  listEl.replaceChildren(
    ...[{ name: say('you', { name: call.info.name }) }, ...call.peers.values()].map((p) => {
      const li = document.createElement('li');
      li.textContent = p.name;
      return li;
    }),
  );
}

interface Choice {
  name?: string;
  camera?: { deviceId?: string };
  microphone?: { deviceId?: string };
}

/**
 * The pre-join screen: a preview of the camera, the microphone and camera to
 * use, the participant's name when the token has none, then "Join". A device
 * that is refused or missing is explained, and the call is joined without it.
 */
async function prejoin(form: HTMLFormElement): Promise<Choice> {
  const preview = document.getElementById('preview') as HTMLVideoElement;
  const messagesEl = document.getElementById('device-messages')!;
  const selects: Record<DeviceKind, HTMLSelectElement> = {
    camera: document.getElementById('camera-select') as HTMLSelectElement,
    microphone: document.getElementById('mic-select') as HTMLSelectElement,
  };
  const nameInput = document.getElementById('name-input') as HTMLInputElement | null;
  const joinBtn = document.getElementById('join-button') as HTMLButtonElement;
  // A form, so that Enter in the name field joins as the button does. Listened to at once: a "Join" before the
  // devices opened must not submit the form natively (a reload without the token), it joins once they are.
  const submitted = new Promise<void>((resolve) => {
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (nameInput && !nameInput.value.trim()) {
        nameInput.setAttribute('aria-invalid', 'true');
        nameInput.focus();
        return;
      }
      nameInput?.removeAttribute('aria-invalid');
      resolve();
    });
  });
  // Disabled in the HTML until now: clicked before this script ran, the form would submit natively.
  joinBtn.disabled = false;
  const tracks: Partial<Record<DeviceKind, MediaStreamTrack>> = {};
  const problems = new Map<DeviceKind, string>();
  const showPreview = () => {
    const video = tracks.camera;
    // No camera: no stream at all, as an empty one keeps the page's load event from ever firing.
    preview.srcObject = video ? new MediaStream([video]) : null;
    if (video) void preview.play().catch(() => undefined);
  };
  const renderProblems = () =>
    messagesEl.replaceChildren(
      ...[...problems.values()].map((text) => {
        const p = document.createElement('p');
        p.textContent = text;
        return p;
      }),
    );

  const open = async (kind: DeviceKind, deviceId?: string) => {
    tracks[kind]?.stop();
    delete tracks[kind];
    const constraints = deviceId ? { deviceId: { exact: deviceId } } : true;
    try {
      const stream = await navigator.mediaDevices.getUserMedia(
        kind === 'camera' ? { video: constraints } : { audio: constraints },
      );
      tracks[kind] = stream.getTracks()[0]!;
      problems.delete(kind);
    } catch (err) {
      problems.set(kind, deviceProblem(kind, err));
    }
    if (kind === 'camera') showPreview();
    renderProblems();
  };
  await open('camera');
  await open('microphone');

  // Device names are readable only once access was granted, so the lists are filled after the preview opened.
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => [] as MediaDeviceInfo[]);
  for (const kind of ['camera', 'microphone'] as const) {
    const select = selects[kind];
    const ofKind = devices.filter((d) => d.kind === (kind === 'camera' ? 'videoinput' : 'audioinput') && d.deviceId);
    const current = tracks[kind]?.getSettings().deviceId;
    select.replaceChildren(
      ...ofKind.map(
        (d, i) => new Option(d.label || `${say(kind)} ${i + 1}`, d.deviceId, false, d.deviceId === current),
      ),
    );
    if (ofKind.length === 0) select.append(new Option(say('noDevice'), ''));
    select.disabled = ofKind.length === 0 || problems.has(kind);
    select.addEventListener('change', () => void open(kind, select.value));
  }
  report('prejoin', { devices: { camera: !problems.has('camera'), microphone: !problems.has('microphone') } });

  await submitted;
  joinBtn.disabled = true;
  joinBtn.textContent = say('joining');
  // The call opens its own tracks on the chosen devices: the preview lets go of them.
  const choice: Choice = { name: nameInput?.value.trim() || undefined };
  for (const kind of ['camera', 'microphone'] as const) {
    if (tracks[kind]) choice[kind] = { deviceId: selects[kind].value || undefined };
    tracks[kind]?.stop();
  }
  form.hidden = true;
  document.getElementById('call')!.hidden = false;
  document.getElementById('controls')!.hidden = false;
  return choice;
}

async function main(): Promise<void> {
  // The page's early script (src/web/earlyJoin.ts) may already have taken the query string out of the address bar.
  const params = new URLSearchParams(window.vigieLinkSearch ?? location.search);
  const token = params.get('token');
  // The token is a credential: keep it out of the address bar and history.
  history.replaceState(null, '', location.pathname);
  if (!token) throw Object.assign(new Error(say('noToken')), { code: 'UNAUTHORIZED' });
  const relayOnly = params.get('relay') === '1';

  const form = document.getElementById('prejoin') as HTMLFormElement | null;
  // While the user is on the pre-join screen, the signaling socket opens: "Join" then sends the join at once.
  // Nothing is sent on it before the click (/embed joins from its first script instead, see earlyJoin.ts).
  const socket = form ? new WebSocket(window.Vigie.VigieCall.signalingUrl()) : undefined;
  // And the browser works out its media capabilities, which the join would otherwise wait for.
  if (form) window.Vigie.VigieCall.prepare();
  // /embed has no pre-join screen: it tries both devices.
  const choice: Choice = form ? await prejoin(form) : { camera: {}, microphone: {} };
  setStatus(say('connecting'));
  const call = await window.Vigie.VigieCall.join({ token, relayOnly, name: choice.name, socket });
  window.vigieCall = call;
  setStatus(say('inRoom', { room: call.info.room }));
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
    const name = call.peers.get(peerId)?.name ?? say('guest');
    // A screen share gets its own tile, so the sender's camera stays in view beside it.
    const el = source === 'screen' ? tile(`screen-${consumerId}`, say('screenOf', { name })) : tile(peerId, name);
    const media = el.querySelector(kind === 'video' ? 'video' : 'audio') as HTMLMediaElement;
    media.srcObject = new MediaStream([track]);
    void media.play().catch(() => undefined);
    report('trackAdded', { peerId, kind, source });
  });
  call.on('trackRemoved', ({ peerId, consumerId }) => {
    document.getElementById(`tile-screen-${consumerId}`)?.remove();
    report('trackRemoved', { peerId });
  });
  const showSpeaker = (peerId: string) => {
    speakingTileId = `tile-${peerId === call.info.peerId ? 'self' : peerId}`;
    for (const el of tilesEl.querySelectorAll('.tile')) el.classList.toggle('speaking', el.id === speakingTileId);
    report('activeSpeaker', { peerId });
  };
  call.on('activeSpeaker', ({ peerId }) => showSpeaker(peerId));
  // Announced while joining, before this listener existed.
  if (call.activeSpeaker) showSpeaker(call.activeSpeaker);
  call.on('roomClosed', ({ reason }) => {
    setStatus(say('callEnded', { reason }));
    tilesEl.replaceChildren();
    report('roomClosed', { reason });
  });
  call.on('reconnecting', ({ attempt, reason }) => {
    setStatus(say('reconnecting', { attempt }));
    report('reconnecting', { attempt, reason });
  });
  call.on('reconnected', ({ peerId }) => {
    setStatus(say('inRoom', { room: call.info.room }));
    renderParticipants(call);
    report('reconnected', { peerId });
  });
  call.on('disconnected', (info) => {
    setStatus(say('disconnected'));
    report('disconnected', info);
  });
  const recordingEl = document.getElementById('recording')!;
  const consent = consentDialog(
    (given) => void call.setRecordingConsent(given).then(() => report('recordingConsent', { given })),
  );
  const showRecording = (active: boolean, consentRequired: boolean) => {
    const was = recordingEl.classList.contains('on');
    recordingEl.classList.toggle('on', active);
    // Said once per change, so a screen reader user hears that the call is (no longer) recorded.
    if (active !== was) announce(say(active ? 'recordingStarted' : 'recordingStopped'));
    if (active && consentRequired) consent.open();
    else consent.close();
  };
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
    btn.title = locked ? say('mutedByModerator') : '';
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
    setStatus(say('serverDraining'));
    report('serverDraining', d);
  });
  call.on('removed', ({ reason }) => {
    setStatus(say('removed'));
    tilesEl.replaceChildren();
    report('removed', { reason });
  });
  call.on('error', (e) => report('error', e));

  wireButtons(call);
  if (call.can('publish')) await publishChosen(call, choice);
}

/** Publishes the devices chosen (all, in /embed); one that fails is explained, and the call goes on without it. */
async function publishChosen(call: VigieSdk.VigieCall, choice: Choice): Promise<void> {
  const mine = tile('self', say('you', { name: call.info.name }));
  const problems: string[] = [];
  if (choice.camera) {
    try {
      const cam = await call.publishCamera({
        width: 640,
        height: 480,
        ...(choice.camera.deviceId ? { deviceId: { exact: choice.camera.deviceId } } : {}),
      });
      (mine.querySelector('video') as HTMLVideoElement).srcObject = new MediaStream([cam.track!]);
    } catch (err) {
      problems.push(deviceProblem('camera', err));
    }
  }
  if (choice.microphone) {
    try {
      await call.publishMic(choice.microphone.deviceId ? { deviceId: { exact: choice.microphone.deviceId } } : {});
    } catch (err) {
      problems.push(deviceProblem('microphone', err));
    }
  }
  if (problems.length) setStatus([say('inRoom', { room: call.info.room }), ...problems].join(' — '));
  report('published', { sources: [...call.producers.keys()] });
}

/**
 * The consent request, a modal dialog: focus moves into it when it opens,
 * stays in it (Tab cycles between its answers), and returns where it was when
 * it closes.
 */
function consentDialog(answer: (given: boolean) => void): { open: () => void; close: () => void } {
  const dialog = document.getElementById('consent')!;
  const buttons = [...dialog.querySelectorAll('button')];
  let returnTo: HTMLElement | null = null;
  const close = () => {
    if (dialog.hidden) return;
    dialog.hidden = true;
    returnTo?.focus();
  };
  for (const [id, given] of [
    ['consent-yes', true],
    ['consent-no', false],
  ] as const) {
    document.getElementById(id)!.addEventListener('click', () => {
      close();
      answer(given);
    });
  }
  dialog.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab') return;
    const i = buttons.indexOf(document.activeElement as HTMLButtonElement);
    e.preventDefault();
    buttons[(i + (e.shiftKey ? buttons.length - 1 : 1)) % buttons.length]!.focus();
  });
  return {
    open: () => {
      if (!dialog.hidden) return;
      returnTo = document.activeElement instanceof HTMLElement ? document.activeElement : null;
      dialog.hidden = false;
      buttons[0]!.focus();
    },
    close,
  };
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
      setStatus(say('left'));
      tilesEl.replaceChildren();
      report('left');
    });
  });
}

main().catch((err: Error & { code?: string }) => {
  setStatus(say('couldNotJoin', { reason: errorText(lang, err.code) }));
  report('error', { code: err.code ?? 'CLIENT', message: err.message });
});
