import { createHmac } from 'node:crypto';

export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/**
 * TURN REST credentials, as coturn checks them with `use-auth-secret`:
 * username `<unix expiry>:<label>`, password base64(HMAC-SHA1(secret, username)).
 * The label is an opaque session id, never the participant's identity, because
 * coturn logs usernames.
 */
export function turnCredentials(
  secret: string,
  label: string,
  ttlSeconds: number,
  now = Date.now(),
): { username: string; credential: string; expiresAt: number } {
  const expiresAt = Math.floor(now / 1000) + ttlSeconds;
  const username = `${expiresAt}:${label}`;
  const credential = createHmac('sha1', secret).update(username).digest('base64');
  return { username, credential, expiresAt };
}

export function iceServersFor(
  ice: { stunUrls: string[]; turnUrls: string[]; turnSecret?: string; turnCredentialTtlSeconds: number },
  label: string,
): IceServer[] {
  const servers: IceServer[] = [];
  if (ice.stunUrls.length > 0) servers.push({ urls: ice.stunUrls });
  if (ice.turnUrls.length > 0 && ice.turnSecret) {
    const { username, credential } = turnCredentials(ice.turnSecret, label, ice.turnCredentialTtlSeconds);
    servers.push({ urls: ice.turnUrls, username, credential });
  }
  return servers;
}
