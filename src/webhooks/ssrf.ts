import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { promises as dns } from 'node:dns';
import net from 'node:net';
import { VigieError } from '../errors.js';

/** Address ranges a webhook may not target unless private targets are allowed. */
const BLOCKED = new net.BlockList();
for (const [addr, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  BLOCKED.addSubnet(addr, prefix, 'ipv4');
for (const [addr, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['2001:db8::', 32],
  ['64:ff9b::', 96],
] as const) {
  BLOCKED.addSubnet(addr, prefix, 'ipv6');
}

export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return BLOCKED.check(mapped[1]!, 'ipv4');
  return BLOCKED.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
}

/** Why a plain-http target is refused; the same words at registration and at delivery. */
export const HTTP_REFUSED =
  'webhook URL must be https (deliveries carry identities); plain http needs VIGIE_WEBHOOK_ALLOW_HTTP=true';

/**
 * Refuses a URL that is not https (unless allowed), or whose host is, or
 * resolves to, a private address (checked when it is registered).
 */
export async function assertPublicTarget(url: string, allowPrivate: boolean, allowHttp: boolean): Promise<void> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new VigieError('INVALID_REQUEST', 'webhook URL is not a valid URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw new VigieError('INVALID_REQUEST', 'webhook URL must be http(s)');
  if (u.username || u.password) throw new VigieError('INVALID_REQUEST', 'webhook URL may not carry credentials');
  if (u.protocol === 'http:' && !allowHttp) throw new VigieError('INVALID_REQUEST', HTTP_REFUSED);
  if (allowPrivate) return;
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const addresses = net.isIP(host)
    ? [host]
    : await dns
        .lookup(host, { all: true })
        .then((r) => r.map((a) => a.address))
        .catch(() => {
          throw new VigieError('INVALID_REQUEST', `webhook host ${host} does not resolve`);
        });
  const bad = addresses.find(isPrivateAddress);
  if (bad)
    throw new VigieError(
      'INVALID_REQUEST',
      `webhook target ${host} resolves to a private, loopback or link-local address (${bad}); refused`,
    );
}

/**
 * A `lookup` for http.request that refuses private addresses at connect time,
 * so a name that resolved to a public address when registered cannot be
 * rebound to an internal one later.
 */
export function guardedLookup(allowPrivate: boolean) {
  return (
    hostname: string,
    options: object,
    callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, []);
      const bad = allowPrivate ? undefined : addresses.find((a) => isPrivateAddress(a.address));
      if (bad)
        return callback(
          Object.assign(new Error(`refused: ${hostname} resolves to private address ${bad.address}`), {
            code: 'ESSRF',
          }),
          [],
        );
      if ((options as { all?: boolean }).all) return callback(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}
