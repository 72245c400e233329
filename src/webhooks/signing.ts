import { createHmac } from 'node:crypto';

/**
 * `Vigie-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
 * The timestamp is signed with the body, so a receiver that enforces a replay
 * window rejects a captured delivery sent again later. Receivers check it with the server SDK's
 * verifyWebhookSignature (packages/server-sdk), the one implementation of the check.
 */
export function signatureHeader(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}
