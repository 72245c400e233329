/**
 * The one catalogue of every heading, label and fixed sentence in the DPO's
 * documents (record of processing, subprocessor report, audit export), in
 * English and French. A French controller files these with the CNIL, so the
 * French side uses the CNIL's own terms (its register template: "Registre des
 * activités de traitement", "Responsable du traitement", "Finalités",
 * "Durées de conservation"…). What the documents quote from the operator's own
 * files (subprocessors.yaml, policy names) and the codes of audited actions
 * are data, not catalogue text, and appear as written.
 *
 * Values are plain strings with `{name}` placeholders, so a test can check
 * that a French document holds none of the English fixed text.
 */

export const LANGUAGES = ['en', 'fr'] as const;
export type Lang = (typeof LANGUAGES)[number];

const en = {
  // Durations and retention rules.
  'duration.years': '{n} year(s)',
  'duration.days': '{n} day(s)',
  'duration.seconds': '{n} s',
  'retention.rule': '{policy}: {duration}, then {action}',
  'retention.lock': ' ({mode} lock)',
  'retention.action.delete': 'delete',
  'retention.action.anonymize': 'anonymize',
  'retention.lock.governance': 'governance',
  'retention.lock.compliance': 'compliance',
  none: 'none',

  // Record of processing (GDPR art. 30).
  'ropa.title': 'Record of processing activities (GDPR art. 30)',
  'ropa.controller': 'Controller: {name} ({country}). Generated {at}.',
  'ropa.col.activity': 'Activity',
  'ropa.col.purpose': 'Purpose',
  'ropa.col.basis': 'Legal basis',
  'ropa.col.subjects': 'Data subjects',
  'ropa.col.data': 'Personal data',
  'ropa.col.retention': 'Retention',
  'ropa.recipients': 'Recipients (subprocessors): {list}.',
  'ropa.recipient': '{name} ({entity}, {country}; {mechanism})',
  'ropa.transfers': 'Transfers outside the EEA: {list}.',
  'ropa.security': 'Security measures: {list}.',
  'ropa.calls.name': 'Video calls',
  'ropa.calls.purpose':
    'Connecting participants in audio/video calls, and notifying the business app of who joins and leaves (webhooks)',
  'ropa.calls.basis': 'Art. 6(1)(b) contract, or 6(1)(e) public task',
  'ropa.calls.subjects': 'Call participants',
  'ropa.calls.data': 'Identity given by the business app, display name, IP address, media (not stored unless recorded)',
  'ropa.calls.retention':
    'Media not stored; identity and display name (pseudonym mapping) — {participants}; webhook bodies (identity, ' +
    'display name) kept only until delivered or given up, then removed from the journal by the retention sweep',
  'ropa.quality.name': 'Call quality monitoring',
  'ropa.quality.purpose': 'Measuring and improving call quality (stats, events, MOS)',
  'ropa.quality.basis': 'Art. 6(1)(f) legitimate interest',
  'ropa.quality.subjects': 'Call participants (pseudonymised)',
  'ropa.quality.data': 'Pseudonym, network statistics, call events and join times, browser statistics',
  'ropa.quality.retention':
    'track stats — {track}; transport stats — {transport}; client stats — {client}; ' +
    'events and join funnel — {events}; per-call quality — {quality}',
  'ropa.recording.name': 'Call recording',
  'ropa.recording.purpose': 'Recording calls where the room policy requires it (evidence, quality, training)',
  'ropa.recording.basis': 'Art. 6(1)(c) legal obligation or 6(1)(a) consent, per room policy',
  'ropa.recording.subjects': 'Recorded participants',
  'ropa.recording.data': 'Audio and video of the participant, pseudonym',
  'ropa.access.name': 'Access records',
  'ropa.access.purpose': 'Recording who accessed recordings, from where',
  'ropa.access.basis': 'Art. 6(1)(c) legal obligation (art. 32)',
  'ropa.access.subjects': 'Staff and participants who access recordings',
  'ropa.access.data': 'Actor, pseudonym of a participant, IP address',
  'ropa.webhooks.name': 'Webhook delivery log',
  'ropa.webhooks.purpose': 'Proving and troubleshooting deliveries to the business app',
  'ropa.webhooks.basis': 'Art. 6(1)(f) legitimate interest',
  'ropa.webhooks.subjects': 'None directly (delivery metadata)',
  'ropa.webhooks.data': 'Endpoint, event name, outcome, error',
  'ropa.audit.name': 'Audit trail',
  'ropa.audit.purpose': 'Accountability: access to personal data and administrative actions',
  'ropa.audit.basis': 'Art. 6(1)(c) legal obligation (art. 5(2), 32)',
  'ropa.audit.subjects': 'Staff and participants concerned by an access',
  'ropa.audit.data': 'Actor, action, target, pseudonym, IP address',
  'ropa.audit.retention':
    '{audit}. Kept on erasure (art. 17(3)(b)) and never altered, so its hash chain still verifies; erasure ' +
    "destroys the person's pseudonym salt instead, so their entries can no longer be linked to them",
  'ropa.dsar.name': 'Data subject requests',
  'ropa.dsar.purpose': 'Answering access and erasure requests',
  'ropa.dsar.basis': 'Art. 6(1)(c) legal obligation (art. 15-17)',
  'ropa.dsar.subjects': 'Requesting participants',
  'ropa.dsar.data': 'Exported personal data; the record of each request (pseudonym)',
  'ropa.dsar.retention':
    "archives — {exports}, and deleted at the person's erasure; records of requests — as the audit trail. Erasure " +
    "deletes the person's rows, every version of their recordings (except under legal hold or a COMPLIANCE lock, " +
    'which the answer lists), rows still in the telemetry spool, their identity in pending webhook bodies, and ' +
    'their archives, then destroys their salt',
  'ropa.security.transport': 'TLS for signaling and API, DTLS-SRTP for media',
  'ropa.security.pseudonyms':
    'Pseudonymisation (HMAC-SHA256 with a key per tenant and a random salt per person, destroyed at erasure) of ' +
    'stats, events, the recording catalog and the audit trail',
  'ropa.security.s3Lock': 'Object Lock of recordings',
  'ropa.security.s3LockEncrypted': 'Object Lock of recordings and server-side encryption ({sse})',
  'ropa.security.localLock':
    'Object Lock semantics enforced by the local recording store (no encryption at rest by the gateway)',
  'ropa.security.audit': 'Hash-chained, signed audit log',
  'ropa.security.keys': 'API keys stored hashed; secrets never logged',

  // Subprocessor report (GDPR art. 28).
  'sub.title': 'Subprocessors and data residency',
  'sub.status': 'Controller: {name} ({country}). Generated {at}. Status: {status}.',
  'sub.status.ok': 'no finding',
  'sub.status.findings': '**findings to resolve**',
  'sub.used': 'What the running configuration uses',
  'sub.col.component': 'Component',
  'sub.col.endpoint': 'Endpoint',
  'sub.col.processor': 'Processor',
  'sub.col.locations': 'Locations',
  'sub.col.flags': 'Flags',
  'sub.undeclared': '**undeclared**',
  'sub.register': 'Register',
  'sub.col.name': 'Name',
  'sub.col.entity': 'Legal entity',
  'sub.col.country': 'Country',
  'sub.col.service': 'Service',
  'sub.col.purposes': 'Purposes',
  'sub.col.data': 'Data',
  'sub.col.hosting': 'Hosting',
  'sub.col.dpa': 'DPA',
  'sub.col.transfers': 'Transfers',
  'sub.unused': 'Declared but not used by this configuration: {list}.',
  'sub.internal': 'internal (operator infrastructure)',
  'sub.component.storage': 'object storage (recordings)',
  'sub.component.clickhouse': 'ClickHouse (stats, events, catalog, audit)',
  'sub.component.turn': 'TURN relay',
  'sub.component.otel': 'OpenTelemetry collector',
  'sub.component.webhook': 'webhook target (tenant {tenant})',
  'sub.flag.undeclared':
    'UNDECLARED_PROCESSOR: this endpoint belongs to no subprocessor in compliance/subprocessors.yaml',
  'sub.flag.mismatch': 'LOCATION_MISMATCH: configured as {configured}, but {processor} declares {declared}',
  'sub.flag.outsideEu': 'OUTSIDE_EU: {country}',
  'sub.flag.outsideFrance': 'OUTSIDE_FRANCE: {country} (EU)',
  'sub.transfer.none (EEA)': 'none (EEA)',
  'sub.transfer.adequacy decision': 'adequacy decision',
  'sub.transfer.SCC': 'SCC (standard contractual clauses)',
  'sub.transfer.BCR': 'BCR (binding corporate rules)',

  // Audit export.
  'audit.title': 'Audit export — tenant {tenant}',
  'audit.period': 'Period: {from} to {to} (UTC). Generated {at} by Vigie.',
  'audit.summary': 'Summary',
  'audit.total': 'Entries in this export: {rows} (chain sequence {first} to {last}).',
  'audit.empty': 'No audit entry in this period.',
  'audit.byAction': 'Entries per action',
  'audit.byActor': 'Entries per actor',
  'audit.col.action': 'Action',
  'audit.col.actor': 'Actor',
  'audit.col.entries': 'Entries',
  'audit.col.recording': 'Recording',
  'audit.col.first': 'First',
  'audit.col.last': 'Last',
  'audit.recordings': 'Accesses to recordings',
  'audit.recordings.none': 'No recording was accessed in this period.',
  'audit.recordings.total': 'Accesses to recordings (read, download): {n}.',
  'audit.more': '… and {n} more (the JSON Lines or CSV export of the same period lists every entry).',
  'audit.verify': 'How to verify this file',
  'audit.verify.intro':
    'This file is signed as a whole by the gateway: its SHA-256 digest is covered by a detached JWS (ES256), ' +
    'delivered beside the file as FILE.jws (and in the x-vigie-signature header of the download).',
  'audit.verify.kid': 'Signing key (kid): {kid}',
  'audit.verify.jwks': 'Public key set (JWKS): {url}',
  'audit.verify.command': 'Command (with the Vigie command line; VIGIE_URL is the gateway, no API key needed):',
  'audit.verify.manual':
    'Without Vigie: compute the SHA-256 of the file (sha256sum FILE) and check that the JWS, verified with the ' +
    'key of that kid from the JWKS, signs {"alg":"SHA-256","digest":"<that digest>"}. One changed byte in the ' +
    'file breaks the signature.',
  'audit.verify.hash':
    "The hash column is each entry's link in the tenant's hash chain (SHA-256, written in full); \"vigie audit " +
    'verify" checks the chain against its signed checkpoints.',
  'audit.entries': 'Entries',
  'audit.count': '{rows} entries.',
  'audit.col.seq': 'No.',
  'audit.col.ts': 'Time (UTC)',
  'audit.col.target': 'Target',
  'audit.col.subject': 'Data subject (pseudonym)',
  'audit.col.result': 'Result',
  'audit.col.source_ip': 'Source IP',
  'audit.col.legal_basis': 'Legal basis',
  'audit.col.hash': 'Chain hash',
  'basis.dsar': 'GDPR art. 15-17 (data subject request)',
  'basis.retention': 'GDPR art. 5(1)(e) (storage limitation, retention policy)',
  'basis.legalHold': 'GDPR art. 17(3)(e) (legal claims)',
  'basis.delete': 'GDPR art. 17 / controller instruction',
  'basis.default': 'GDPR art. 6(1)(b)/(f) (service operation, accountability art. 5(2))',
} as const;

export type MessageKey = keyof typeof en;

const fr: Record<MessageKey, string> = {
  'duration.years': '{n} an(s)',
  'duration.days': '{n} jour(s)',
  'duration.seconds': '{n} s',
  'retention.rule': '{policy} : {duration}, puis {action}',
  'retention.lock': ' (verrouillage {mode})',
  'retention.action.delete': 'suppression',
  'retention.action.anonymize': 'anonymisation',
  'retention.lock.governance': 'gouvernance',
  'retention.lock.compliance': 'conformité',
  none: 'aucun',

  'ropa.title': 'Registre des activités de traitement (RGPD art. 30)',
  'ropa.controller': 'Responsable du traitement : {name} ({country}). Établi le {at}.',
  'ropa.col.activity': 'Activité de traitement',
  'ropa.col.purpose': 'Finalités',
  'ropa.col.basis': 'Base légale',
  'ropa.col.subjects': 'Catégories de personnes concernées',
  'ropa.col.data': 'Catégories de données personnelles',
  'ropa.col.retention': 'Durées de conservation',
  'ropa.recipients': 'Destinataires (sous-traitants) : {list}.',
  'ropa.recipient': '{name} ({entity}, {country} ; {mechanism})',
  'ropa.transfers': "Transferts hors de l'EEE : {list}.",
  'ropa.security': 'Mesures de sécurité : {list}.',
  'ropa.calls.name': 'Appels vidéo',
  'ropa.calls.purpose':
    "Mise en relation des participants en appel audio/vidéo, et information de l'application métier des arrivées " +
    'et départs (webhooks)',
  'ropa.calls.basis': "Art. 6(1)(b) exécution d'un contrat, ou 6(1)(e) mission d'intérêt public",
  'ropa.calls.subjects': 'Participants aux appels',
  'ropa.calls.data':
    "Identité transmise par l'application métier, nom affiché, adresse IP, flux audio et vidéo (non conservés " +
    'sauf enregistrement)',
  'ropa.calls.retention':
    'Flux non conservés ; identité et nom affiché (table de correspondance des pseudonymes) — {participants} ; ' +
    "corps des webhooks (identité, nom affiché) conservés jusqu'à leur livraison ou leur abandon, puis retirés du " +
    'journal par la purge de conservation',
  'ropa.quality.name': 'Suivi de la qualité des appels',
  'ropa.quality.purpose': 'Mesure et amélioration de la qualité des appels (statistiques, événements, MOS)',
  'ropa.quality.basis': 'Art. 6(1)(f) intérêt légitime',
  'ropa.quality.subjects': 'Participants aux appels (pseudonymisés)',
  'ropa.quality.data':
    "Pseudonyme, statistiques réseau, événements d'appel et durées de connexion, statistiques du navigateur",
  'ropa.quality.retention':
    'statistiques des pistes — {track} ; statistiques des transports — {transport} ; statistiques des clients — ' +
    '{client} ; événements et étapes de connexion — {events} ; qualité par appel — {quality}',
  'ropa.recording.name': 'Enregistrement des appels',
  'ropa.recording.purpose':
    "Enregistrement des appels lorsque la politique de la salle l'exige (preuve, qualité, formation)",
  'ropa.recording.basis': 'Art. 6(1)(c) obligation légale ou 6(1)(a) consentement, selon la politique de la salle',
  'ropa.recording.subjects': 'Participants enregistrés',
  'ropa.recording.data': 'Voix et image du participant, pseudonyme',
  'ropa.access.name': 'Traçabilité des accès',
  'ropa.access.purpose': 'Journalisation de qui a consulté les enregistrements, et depuis où',
  'ropa.access.basis': 'Art. 6(1)(c) obligation légale (art. 32)',
  'ropa.access.subjects': 'Personnels et participants qui consultent les enregistrements',
  'ropa.access.data': "Auteur de l'accès, pseudonyme d'un participant, adresse IP",
  'ropa.webhooks.name': 'Journal de livraison des webhooks',
  'ropa.webhooks.purpose': "Preuve et diagnostic des livraisons à l'application métier",
  'ropa.webhooks.basis': 'Art. 6(1)(f) intérêt légitime',
  'ropa.webhooks.subjects': 'Aucune directement (métadonnées de livraison)',
  'ropa.webhooks.data': "Point d'accès, nom de l'événement, issue, erreur",
  'ropa.audit.name': "Journal d'audit",
  'ropa.audit.purpose': "Responsabilité (accountability) : accès aux données personnelles et actions d'administration",
  'ropa.audit.basis': 'Art. 6(1)(c) obligation légale (art. 5(2), 32)',
  'ropa.audit.subjects': 'Personnels et participants concernés par un accès',
  'ropa.audit.data': 'Auteur, action, cible, pseudonyme, adresse IP',
  'ropa.audit.retention':
    "{audit}. Conservé lors d'un effacement (art. 17(3)(b)) et jamais modifié, pour que sa chaîne d'empreintes " +
    "reste vérifiable ; l'effacement détruit à la place le sel du pseudonyme de la personne, si bien que ses " +
    'entrées ne peuvent plus lui être rattachées',
  'ropa.dsar.name': 'Demandes des personnes concernées',
  'ropa.dsar.purpose': "Réponse aux demandes d'accès et d'effacement",
  'ropa.dsar.basis': 'Art. 6(1)(c) obligation légale (art. 15-17)',
  'ropa.dsar.subjects': 'Participants demandeurs',
  'ropa.dsar.data': 'Données personnelles exportées ; la trace de chaque demande (pseudonyme)',
  'ropa.dsar.retention':
    "archives — {exports}, et supprimées lors de l'effacement de la personne ; traces des demandes — comme le " +
    "journal d'audit. L'effacement supprime les lignes de la personne, toutes les versions de ses enregistrements " +
    '(sauf sous conservation légale ou verrouillage COMPLIANCE, que la réponse énumère), les lignes encore dans ' +
    'la file de télémétrie, son identité dans les corps de webhooks en attente et ses archives, puis détruit son ' +
    'sel',
  'ropa.security.transport': "TLS pour la signalisation et l'API, DTLS-SRTP pour les flux",
  'ropa.security.pseudonyms':
    'Pseudonymisation (HMAC-SHA256 avec une clé par locataire et un sel aléatoire par personne, détruit à ' +
    "l'effacement) des statistiques, des événements, du catalogue des enregistrements et du journal d'audit",
  'ropa.security.s3Lock': 'Verrouillage des objets (Object Lock) des enregistrements',
  'ropa.security.s3LockEncrypted':
    'Verrouillage des objets (Object Lock) des enregistrements et chiffrement côté serveur ({sse})',
  'ropa.security.localLock':
    'Sémantique de verrouillage des objets appliquée par le stockage local des enregistrements (pas de ' +
    'chiffrement au repos par la passerelle)',
  'ropa.security.audit': "Journal d'audit chaîné par empreintes et signé",
  'ropa.security.keys': "Clés d'API conservées sous forme d'empreinte ; secrets jamais journalisés",

  'sub.title': 'Sous-traitants et localisation des données',
  'sub.status': 'Responsable du traitement : {name} ({country}). Établi le {at}. État : {status}.',
  'sub.status.ok': 'aucune anomalie',
  'sub.status.findings': '**anomalies à corriger**',
  'sub.used': 'Ce que la configuration en service utilise',
  'sub.col.component': 'Composant',
  'sub.col.endpoint': "Point d'accès",
  'sub.col.processor': 'Sous-traitant',
  'sub.col.locations': 'Localisations',
  'sub.col.flags': 'Alertes',
  'sub.undeclared': '**non déclaré**',
  'sub.register': 'Registre des sous-traitants',
  'sub.col.name': 'Nom',
  'sub.col.entity': 'Entité juridique',
  'sub.col.country': 'Pays',
  'sub.col.service': 'Prestation',
  'sub.col.purposes': 'Finalités',
  'sub.col.data': 'Données',
  'sub.col.hosting': 'Hébergement',
  'sub.col.dpa': 'Contrat de sous-traitance (art. 28)',
  'sub.col.transfers': 'Encadrement des transferts',
  'sub.unused': 'Déclarés mais non utilisés par cette configuration : {list}.',
  'sub.internal': "interne (infrastructure de l'exploitant)",
  'sub.component.storage': 'stockage objet (enregistrements)',
  'sub.component.clickhouse': 'ClickHouse (statistiques, événements, catalogue, audit)',
  'sub.component.turn': 'relais TURN',
  'sub.component.otel': 'collecteur OpenTelemetry',
  'sub.component.webhook': 'destinataire de webhooks (locataire {tenant})',
  'sub.flag.undeclared':
    "UNDECLARED_PROCESSOR : ce point d'accès n'appartient à aucun sous-traitant de compliance/subprocessors.yaml",
  'sub.flag.mismatch': 'LOCATION_MISMATCH : configuré en {configured}, mais {processor} déclare {declared}',
  'sub.flag.outsideEu': 'OUTSIDE_EU : {country}',
  'sub.flag.outsideFrance': 'OUTSIDE_FRANCE : {country} (UE)',
  'sub.transfer.none (EEA)': 'aucun (EEE)',
  'sub.transfer.adequacy decision': "décision d'adéquation",
  'sub.transfer.SCC': 'CCT (clauses contractuelles types)',
  'sub.transfer.BCR': "BCR (règles d'entreprise contraignantes)",

  'audit.title': "Export du journal d'audit — locataire {tenant}",
  'audit.period': 'Période : du {from} au {to} (UTC). Établi le {at} par Vigie.',
  'audit.summary': 'Synthèse',
  'audit.total': 'Entrées de cet export : {rows} (séquence de la chaîne {first} à {last}).',
  'audit.empty': "Aucune entrée d'audit sur cette période.",
  'audit.byAction': 'Entrées par action',
  'audit.byActor': 'Entrées par auteur',
  'audit.col.action': 'Action',
  'audit.col.actor': 'Auteur',
  'audit.col.entries': 'Entrées',
  'audit.col.recording': 'Enregistrement',
  'audit.col.first': 'Premier',
  'audit.col.last': 'Dernier',
  'audit.recordings': 'Accès aux enregistrements',
  'audit.recordings.none': "Aucun enregistrement n'a été consulté sur cette période.",
  'audit.recordings.total': 'Accès aux enregistrements (lecture, téléchargement) : {n}.',
  'audit.more': "… et {n} de plus (l'export JSON Lines ou CSV de la même période donne chaque entrée).",
  'audit.verify': 'Vérifier ce fichier',
  'audit.verify.intro':
    'Ce fichier est signé en entier par la passerelle : son empreinte SHA-256 est couverte par une signature JWS ' +
    "détachée (ES256), fournie à côté du fichier sous le nom FICHIER.jws (et dans l'en-tête x-vigie-signature du " +
    'téléchargement).',
  'audit.verify.kid': 'Clé de signature (kid) : {kid}',
  'audit.verify.jwks': 'Jeu de clés publiques (JWKS) : {url}',
  'audit.verify.command':
    "Commande (avec la ligne de commande Vigie ; VIGIE_URL désigne la passerelle, aucune clé d'API n'est nécessaire) :",
  'audit.verify.manual':
    'Sans Vigie : calculer le SHA-256 du fichier (sha256sum FICHIER) et vérifier que la JWS, contrôlée avec la ' +
    'clé de ce kid publiée dans le JWKS, signe {"alg":"SHA-256","digest":"<cette empreinte>"}. Un seul octet ' +
    'modifié dans le fichier invalide la signature.',
  'audit.verify.hash':
    "La colonne d'empreinte est le maillon de chaque entrée dans la chaîne d'empreintes du locataire (SHA-256, " +
    'écrit en entier) ; « vigie audit verify » contrôle la chaîne par rapport à ses points de contrôle signés.',
  'audit.entries': 'Entrées',
  'audit.count': '{rows} entrées.',
  'audit.col.seq': 'N°',
  'audit.col.ts': 'Horodatage (UTC)',
  'audit.col.target': 'Cible',
  'audit.col.subject': 'Personne concernée (pseudonyme)',
  'audit.col.result': 'Résultat',
  'audit.col.source_ip': 'Adresse IP source',
  'audit.col.legal_basis': 'Base légale',
  'audit.col.hash': 'Empreinte de chaîne',
  'basis.dsar': 'RGPD art. 15-17 (demande de la personne concernée)',
  'basis.retention': 'RGPD art. 5(1)(e) (limitation de la conservation, politique de conservation)',
  'basis.legalHold': 'RGPD art. 17(3)(e) (constatation, exercice ou défense de droits en justice)',
  'basis.delete': 'RGPD art. 17 / instruction du responsable du traitement',
  'basis.default': 'RGPD art. 6(1)(b)/(f) (fonctionnement du service, responsabilité art. 5(2))',
};

export const CATALOGUES: Readonly<Record<Lang, Readonly<Record<MessageKey, string>>>> = { en, fr };

export type Translate = (key: MessageKey, params?: Record<string, string | number>) => string;

/** The catalogue's text for `key` in `lang`, with its `{name}` placeholders filled. */
export function translator(lang: Lang): Translate {
  const messages = CATALOGUES[lang];
  return (key, params = {}) =>
    messages[key].replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

/**
 * The language of a DPO document: the one asked for, else the tenant's
 * `defaultLanguage` (an optional tenant setting), else English.
 */
export function documentLanguage(asked: Lang | undefined, tenant: object | undefined): Lang {
  const preferred = tenant && 'defaultLanguage' in tenant ? tenant.defaultLanguage : undefined;
  return asked ?? LANGUAGES.find((l) => l === preferred) ?? 'en';
}
