/**
 * The words of the /join and /embed pages, in English and French: one typed
 * catalogue per language, used by the server (the HTML of the pages and of
 * their error page) and bundled into the page script (what it writes later).
 * French is the reference's twin: `Catalogue` is derived from English, so a
 * key missing in French does not compile, and test/pages.test.ts checks the
 * key sets at run time too.
 *
 * Browser-safe: no Node import, the page script bundles this module.
 */
import type { ErrorCode } from '../errors.js';

export const LANGUAGES = ['en', 'fr'] as const;
export type Language = (typeof LANGUAGES)[number];
export const DEFAULT_LANGUAGE: Language = 'en';

const en = {
  title: 'Vigie call',
  connecting: 'Connecting…',
  recording: 'Recording',
  recordingStarted: 'This call is now being recorded.',
  recordingStopped: 'Recording has stopped.',
  consentTitle: 'Recording consent',
  consentQuestion: 'This call is recorded. Do you agree to be recorded?',
  consentYes: 'I agree',
  consentNo: 'I refuse',
  mute: 'Mute',
  cameraOff: 'Camera off',
  shareScreen: 'Share screen',
  leave: 'Leave',
  controls: 'Call controls',
  participantsVideo: "Participants' video",
  inTheRoom: 'In the room',
  you: '{name} (you)',
  screenOf: '{name} (screen)',
  guest: 'Guest',
  speaking: 'Speaking',
  mutedByModerator: 'Muted by a moderator',
  inRoom: 'In {room}',
  callEnded: 'Call ended ({reason})',
  reconnecting: 'Reconnecting… (attempt {attempt})',
  disconnected: 'Disconnected',
  serverDraining: 'The server is restarting; the call will resume by itself',
  removed: 'You were removed from the call',
  left: 'You left the call',
  couldNotJoin: 'Could not join: {reason}',
  // The pre-join screen.
  prejoinTitle: 'Ready to join?',
  preview: 'Your camera preview',
  camera: 'Camera',
  microphone: 'Microphone',
  noDevice: 'None',
  yourName: 'Your name',
  nameRequired: 'Enter your name so the others know who you are.',
  join: 'Join',
  joining: 'Joining…',
  cameraRefused: 'The camera is blocked: allow it in your browser to be seen. You can still join without it.',
  micRefused: 'The microphone is blocked: allow it in your browser to be heard. You can still join without it.',
  cameraMissing: 'No camera was found. You can still join: the others will hear you but not see you.',
  micMissing: 'No microphone was found. You can still join: the others will see you but not hear you.',
  deviceFailed: 'The {device} could not be started ({reason}). You can still join without it.',
  // The error page.
  cannotJoin: 'Cannot join',
  gatewayTitle: 'Vigie gateway',
  gatewayHint: 'Open a join link (/join?token=…) to enter a call.',
  noToken: 'This link has no access token.',
  errors: {
    INVALID_REQUEST: 'The request was not valid.',
    UNAUTHORIZED: 'This link is invalid or has expired. Ask for a new one.',
    FORBIDDEN: 'You are not allowed to join this call.',
    NOT_FOUND: 'This call was not found.',
    RATE_LIMITED: 'Too many attempts. Wait a moment and try again.',
    INTERNAL: 'Something went wrong on our side. Try again later.',
    UNAVAILABLE: 'The service is busy or restarting. Try again in a moment.',
    REDIRECT: 'This call is served by another server, which could not be reached. Try again in a moment.',
    CLIENT: 'Your browser could not complete the request.',
  } satisfies Record<ErrorCode | 'CLIENT', string>,
};

export type Catalogue = typeof en;

const fr: Catalogue = {
  title: 'Appel Vigie',
  connecting: 'Connexion…',
  recording: 'Enregistrement',
  recordingStarted: 'Cet appel est maintenant enregistré.',
  recordingStopped: "L'enregistrement est arrêté.",
  consentTitle: "Consentement à l'enregistrement",
  consentQuestion: "Cet appel est enregistré. Acceptez-vous d'être enregistré ?",
  consentYes: "J'accepte",
  consentNo: 'Je refuse',
  mute: 'Couper le micro',
  cameraOff: 'Couper la caméra',
  shareScreen: "Partager l'écran",
  leave: 'Quitter',
  controls: "Commandes de l'appel",
  participantsVideo: 'Vidéo des participants',
  inTheRoom: 'Dans la salle',
  you: '{name} (vous)',
  screenOf: '{name} (écran)',
  guest: 'Invité',
  speaking: 'Parle',
  mutedByModerator: 'Micro coupé par un modérateur',
  inRoom: 'Dans {room}',
  callEnded: 'Appel terminé ({reason})',
  reconnecting: 'Reconnexion… (tentative {attempt})',
  disconnected: 'Déconnecté',
  serverDraining: "Le serveur redémarre ; l'appel reprendra tout seul",
  removed: "Vous avez été retiré de l'appel",
  left: "Vous avez quitté l'appel",
  couldNotJoin: 'Impossible de rejoindre : {reason}',
  prejoinTitle: 'Prêt à rejoindre ?',
  preview: 'Aperçu de votre caméra',
  camera: 'Caméra',
  microphone: 'Micro',
  noDevice: 'Aucun',
  yourName: 'Votre nom',
  nameRequired: 'Indiquez votre nom pour que les autres sachent qui vous êtes.',
  join: 'Rejoindre',
  joining: 'Connexion…',
  cameraRefused:
    "La caméra est bloquée : autorisez-la dans votre navigateur pour être vu. Vous pouvez rejoindre l'appel sans elle.",
  micRefused:
    "Le micro est bloqué : autorisez-le dans votre navigateur pour être entendu. Vous pouvez rejoindre l'appel " +
    'sans lui.',
  cameraMissing:
    "Aucune caméra n'a été trouvée. Vous pouvez rejoindre l'appel : les autres vous entendront sans vous voir.",
  micMissing: "Aucun micro n'a été trouvé. Vous pouvez rejoindre l'appel : les autres vous verront sans vous entendre.",
  deviceFailed: "Impossible de démarrer : {device} ({reason}). Vous pouvez rejoindre l'appel sans.",
  cannotJoin: 'Impossible de rejoindre',
  gatewayTitle: 'Passerelle Vigie',
  gatewayHint: 'Ouvrez un lien de connexion (/join?token=…) pour entrer dans un appel.',
  noToken: "Ce lien n'a pas de jeton d'accès.",
  errors: {
    INVALID_REQUEST: "La demande n'est pas valide.",
    UNAUTHORIZED: 'Ce lien est invalide ou a expiré. Demandez-en un nouveau.',
    FORBIDDEN: "Vous n'êtes pas autorisé à rejoindre cet appel.",
    NOT_FOUND: 'Cet appel est introuvable.',
    RATE_LIMITED: 'Trop de tentatives. Attendez un instant et réessayez.',
    INTERNAL: 'Une erreur est survenue de notre côté. Réessayez plus tard.',
    UNAVAILABLE: 'Le service est occupé ou redémarre. Réessayez dans un instant.',
    REDIRECT: "Cet appel est servi par un autre serveur, qui n'a pas pu être joint. Réessayez dans un instant.",
    CLIENT: "Votre navigateur n'a pas pu terminer la demande.",
  },
};

export const CATALOGUES: Record<Language, Catalogue> = { en, fr };

type TextKey = Exclude<keyof Catalogue, 'errors'>;

/** The text `key` in `lang`, with `{name}` placeholders filled from `vars`. */
export function t(lang: Language, key: TextKey, vars: Record<string, string | number> = {}): string {
  return CATALOGUES[lang][key].replace(/\{(\w+)\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
}

/** The translated message of an error code; unknown codes read as a client-side failure. */
export function errorText(lang: Language, code: string | undefined): string {
  const errors = CATALOGUES[lang].errors;
  return code && code in errors ? errors[code as keyof typeof errors] : errors.CLIENT;
}

export function isLanguage(value: unknown): value is Language {
  return typeof value === 'string' && (LANGUAGES as readonly string[]).includes(value);
}

/**
 * The first language of an Accept-Language header that the pages speak, by
 * quality then order; `fr-CA` counts as `fr`. None: undefined.
 */
export function fromAcceptLanguage(header: string | undefined): Language | undefined {
  if (!header) return undefined;
  const ranked = header
    .split(',')
    .map((part, i) => {
      const [tag = '', ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { base: tag.trim().toLowerCase().split('-')[0], q: q ? Number(q.slice(2)) : 1, i };
    })
    .filter((r) => r.q > 0 && !Number.isNaN(r.q))
    .sort((a, b) => b.q - a.q || a.i - b.i);
  return ranked.map((r) => r.base).find(isLanguage);
}

/** `?lang=`, else Accept-Language, else the tenant's default, else English. */
export function pickLanguage(o: { query?: unknown; acceptLanguage?: string; tenantDefault?: Language }): Language {
  if (isLanguage(o.query)) return o.query;
  return fromAcceptLanguage(o.acceptLanguage) ?? o.tenantDefault ?? DEFAULT_LANGUAGE;
}
