import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyBytes: number;
}

/**
 * What to do to one request: `corrupt-body` flips a byte of the body on its way to the
 * server; `lose-answer` lets the server handle the request, then closes the client's
 * socket instead of relaying the answer (the server did the work, the client cannot know);
 * `alter-etag` relays the answer with another ETag, as from a server that holds other bytes.
 */
export type Fault = 'corrupt-body' | 'lose-answer' | 'alter-etag' | undefined;

export interface S3Proxy {
  /** `http://127.0.0.1:PORT`, to use as the S3 endpoint. */
  endpoint: string;
  host: string;
  port: number;
  /** Every request seen, in order. */
  requests: ProxiedRequest[];
  /** Decides a fault for each request (none by default). */
  fault: (r: ProxiedRequest) => Fault;
  close(): Promise<void>;
}

/**
 * A real HTTP proxy in front of an S3 server, to inject the network failures an upload
 * meets (a corrupted body, an answer lost after the server acted) and to see the headers
 * the client sent. Headers are forwarded unchanged, so SigV4 signatures stay valid.
 */
export async function startS3Proxy(upstream: { host: string; port: number }): Promise<S3Proxy> {
  const proxy: S3Proxy = {
    endpoint: '',
    host: '127.0.0.1',
    port: 0,
    requests: [],
    fault: () => undefined,
    close: async () => undefined,
  };
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const seen: ProxiedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      bodyBytes: body.length,
    };
    proxy.requests.push(seen);
    const fault = proxy.fault(seen);
    if (fault === 'corrupt-body' && body.length > 0) body[body.length >> 1] = body[body.length >> 1]! ^ 0xff;
    const up = http.request(
      { host: upstream.host, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (ur) => {
        if (fault === 'lose-answer') {
          ur.resume();
          ur.on('end', () => req.socket.destroy());
          return;
        }
        if (fault === 'alter-etag' && ur.headers.etag) ur.headers.etag = `"${'0'.repeat(32)}"`;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', () => req.socket.destroy());
    up.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.endpoint = `http://127.0.0.1:${proxy.port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
