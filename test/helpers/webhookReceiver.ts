import Fastify from 'fastify';
import { verifyWebhookSignature } from '@vigie/server-sdk';

export interface Received {
  id: string;
  event: string;
  body: any;
  /** The body as received and its Vigie-Signature header, for checks of the signature itself. */
  raw: string;
  signature: string;
  signatureValid: boolean;
  status: number;
  at: number;
}

/**
 * A business app's webhook endpoint on loopback. `respond` decides each
 * answer (status code) from the delivery id and how often it was seen; a
 * promise holds the answer back (a request left in flight).
 */
export async function startWebhookReceiver(secretFor: () => string | undefined) {
  const app = Fastify();
  const seen = new Map<string, number>();
  const received: Received[] = [];
  /** `remotePort`: the sender's side of the connection, to tell which process sent it (see cluster.ts `portsOf`). */
  let respond: (id: string, seenCount: number, remotePort: number) => number | Promise<number> = () => 200;
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  app.post('/hook', async (req, reply) => {
    const raw = req.body as string;
    const id = String(req.headers['vigie-delivery-id']);
    const count = (seen.get(id) ?? 0) + 1;
    seen.set(id, count);
    const status = await respond(id, count, req.socket.remotePort ?? 0);
    const secret = secretFor();
    const signature = String(req.headers['vigie-signature']);
    received.push({
      id,
      event: String(req.headers['vigie-event']),
      body: JSON.parse(raw),
      raw,
      signature,
      signatureValid: Boolean(secret) && verifyWebhookSignature(secret!, signature, raw),
      status,
      at: Date.now(),
    });
    return reply.code(status).send();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    /** Deliveries answered 2xx, in arrival order. */
    delivered: () => received.filter((r) => r.status >= 200 && r.status < 300),
    setResponder: (fn: typeof respond) => (respond = fn),
    close: () => app.close(),
  };
}
