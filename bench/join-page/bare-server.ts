/**
 * The baseline of the join-page benchmark: one mediasoup router behind plain
 * `ws` signaling, serving the minimal page (bare-client.ts, bundled with
 * esbuild as Vigie's SDK is). No Vigie code runs here; only data is shared
 * with Vigie, so that both servers offer the same media: the router's codecs
 * and the transports' settings (UDP and TCP on 127.0.0.1, 1 Mbit/s initial
 * outgoing bitrate). The page and its script get Vigie's cache headers.
 */
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import * as mediasoup from 'mediasoup';
import type { types as ms } from 'mediasoup';
import { WebSocketServer, type WebSocket } from 'ws';
import { MEDIA_CODECS } from '../../src/media/codecs.js';
import { resolveWorkerBin } from '../../src/media/workerBinary.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>bare mediasoup</title></head>
<body>
<script src="/bare.js"></script>
</body>
</html>`;

export interface BareServer {
  url: string;
  close: () => Promise<void>;
}

export async function startBareServer(): Promise<BareServer> {
  const bundle = await build({
    entryPoints: [path.join(here, 'bare-client.ts')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: ['chrome110'],
    minify: true,
    write: false,
  });
  const script = bundle.outputFiles[0]!.contents;

  const worker = await mediasoup.createWorker({
    workerBin: resolveWorkerBin(process.env.MEDIASOUP_WORKER_BIN),
    logLevel: 'warn',
    rtcMinPort: 41000,
    rtcMaxPort: 41999,
  });
  const router = await worker.createRouter({ mediaCodecs: MEDIA_CODECS });
  const producers = new Map<string, ms.Producer>();
  const sockets = new Set<WebSocket>();

  const http = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/')
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE);
    else if (url.pathname === '/bare.js')
      res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'public, max-age=3600' }).end(script);
    else res.writeHead(404).end();
  });
  const wss = new WebSocketServer({ server: http, path: '/ws' });
  wss.on('connection', (ws) => {
    sockets.add(ws);
    const transports = new Map<string, ms.WebRtcTransport>();
    const consumers = new Map<string, ms.Consumer>();
    const handle = async (method: string, data: any): Promise<unknown> => {
      switch (method) {
        case 'join':
          return { rtpCapabilities: router.rtpCapabilities, producerIds: [...producers.keys()] };
        case 'createTransport': {
          const t = await router.createWebRtcTransport({
            listenInfos: [
              { protocol: 'udp', ip: '127.0.0.1' },
              { protocol: 'tcp', ip: '127.0.0.1' },
            ],
            preferUdp: true,
            initialAvailableOutgoingBitrate: 1_000_000,
          });
          transports.set(t.id, t);
          return {
            id: t.id,
            iceParameters: t.iceParameters,
            iceCandidates: t.iceCandidates,
            dtlsParameters: t.dtlsParameters,
          };
        }
        case 'connectTransport':
          await transports.get(data.transportId)!.connect({ dtlsParameters: data.dtlsParameters });
          return {};
        case 'produce': {
          const producer = await transports
            .get(data.transportId)!
            .produce({ kind: data.kind, rtpParameters: data.rtpParameters });
          producers.set(producer.id, producer);
          producer.observer.once('close', () => producers.delete(producer.id));
          for (const other of sockets)
            if (other !== ws)
              other.send(
                JSON.stringify({ notification: true, method: 'newProducer', data: { producerId: producer.id } }),
              );
          return { id: producer.id };
        }
        case 'consume': {
          const consumer = await transports
            .get(data.transportId)!
            .consume({ producerId: data.producerId, rtpCapabilities: data.rtpCapabilities, paused: true });
          consumers.set(consumer.id, consumer);
          return {
            id: consumer.id,
            producerId: data.producerId,
            kind: consumer.kind,
            rtpParameters: consumer.rtpParameters,
          };
        }
        case 'resumeConsumer':
          await consumers.get(data.consumerId)!.resume();
          return {};
        default:
          throw new Error(`unknown method ${method}`);
      }
    };
    ws.on('message', (raw) => {
      const { id, method, data } = JSON.parse(String(raw));
      handle(method, data).then(
        (result) => ws.send(JSON.stringify({ id, data: result })),
        (err: Error) => ws.send(JSON.stringify({ id, error: err.message })),
      );
    });
    // Closing the transports closes their producers and consumers, and the producers leave the map.
    ws.on('close', () => {
      sockets.delete(ws);
      for (const t of transports.values()) t.close();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise((resolve) => http.close(resolve));
      worker.close();
    },
  };
}
