/**
 * Where the join's time goes, step by step, for the join-page benchmark: each
 * signaling request of the measured page, when the page sent it, when the
 * server received it, when the server answered and when the page had the
 * answer. The same code taps both servers and both pages, which speak the same
 * shape of frames (`{ id, method, data }` requests, answers by `id`).
 *
 * Times are wall-clock milliseconds (`performance.timeOrigin + now()`) on both
 * sides, which share one machine and one clock, so a browser's and a server's
 * times can be subtracted.
 */
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';

/** One frame seen by a server or a page: `in` is received, `out` sent. */
export interface Frame {
  t: number;
  dir: 'in' | 'out';
  /** The parsed frame; undefined when it was not JSON. */
  msg?: { id?: number | string; method?: string; data?: any; notification?: boolean };
}

/** Frames seen by a server, per connection, in order. */
export interface ServerTap {
  /** The connections of the server on `port`, each with its frames. */
  connections(port: number): Frame[][];
  stop(): void;
}

const now = () => performance.timeOrigin + performance.now();

function parse(raw: unknown): Frame['msg'] {
  try {
    return JSON.parse(String(raw));
  } catch {
    return undefined;
  }
}

/**
 * Records every frame of every `ws` server socket in this process, when its
 * 'message' event is emitted (before the server's own listener runs) and when
 * the server sends. Parsing costs both servers the same.
 */
export function tapServers(): ServerTap {
  const frames = new Map<WebSocket, { port: number; frames: Frame[] }>();
  const proto = WebSocket.prototype as any;
  const { emit, send } = proto;
  const of = (ws: any) => {
    let entry = frames.get(ws);
    if (!entry) {
      entry = { port: ws._socket?.localPort ?? 0, frames: [] };
      frames.set(ws, entry);
    }
    return entry.frames;
  };
  proto.emit = function (this: any, event: string, ...args: unknown[]) {
    if (event === 'message' && this._isServer) of(this).push({ t: now(), dir: 'in', msg: parse(args[0]) });
    return emit.call(this, event, ...args);
  };
  proto.send = function (this: any, data: unknown, ...rest: unknown[]) {
    if (this._isServer) of(this).push({ t: now(), dir: 'out', msg: parse(data) });
    return send.call(this, data, ...rest);
  };
  return {
    connections: (port) => [...frames.values()].filter((e) => e.port === port).map((e) => e.frames),
    stop: () => {
      proto.emit = emit;
      proto.send = send;
    },
  };
}

/** A request's four times (ms since the click): sent by the page, received and answered by the server, answered. */
export interface Step {
  sent?: number;
  received?: number;
  answered?: number;
  done?: number;
}

/**
 * The requests the way to the first remote frame is made of, named the same on
 * both servers: join, the recv transport's creation and connection, and the
 * video consumer's consume and resume.
 */
export const STEP_NAMES = [
  'join',
  'transport recv',
  'consume video',
  'connect recv',
  'resume video',
  'transport send',
] as const;
export type StepName = (typeof STEP_NAMES)[number];

/**
 * Names each request of one connection (as its page or its server saw it) by
 * what it is for, following ids across requests: a transport's id to its
 * direction, a consumer's id to its kind.
 */
function nameRequests(frames: Frame[]): Map<number | string, StepName> {
  const requests = new Map<number | string, { method: string; data: any }>();
  const names = new Map<number | string, StepName>();
  const transports = new Map<string, string>();
  const consumers = new Map<string, string>();
  for (const { msg } of frames) {
    if (!msg || msg.notification || msg.id === undefined || msg.id === null) continue;
    if (msg.method) {
      requests.set(msg.id, { method: msg.method, data: msg.data ?? {} });
      continue;
    }
    const req = requests.get(msg.id);
    if (!req) continue;
    const answer = msg.data ?? {};
    let name: string | undefined;
    if (req.method === 'join') {
      name = 'join';
      // Vigie's join can carry the recv transport (its `connectTransport` is then named after it).
      if (answer.recvTransport) transports.set(answer.recvTransport.transportId, 'recv');
    } else if (req.method === 'createWebRtcTransport' || req.method === 'createTransport') {
      transports.set(answer.transportId ?? answer.id, req.data.direction);
      name = `transport ${req.data.direction}`;
    } else if (req.method === 'connectTransport') name = `connect ${transports.get(req.data.transportId)}`;
    else if (req.method === 'consume') {
      consumers.set(answer.consumerId ?? answer.id, answer.kind);
      name = `consume ${answer.kind}`;
    } else if (req.method === 'resumeConsumer') name = `resume ${consumers.get(req.data.consumerId)}`;
    // The first of each: a later one (a second consume of the same kind) is not on the way to the first frame.
    if (name && (STEP_NAMES as readonly string[]).includes(name) && ![...names.values()].includes(name as StepName))
      names.set(msg.id, name as StepName);
  }
  return names;
}

/** When each named request went out and when its answer came back, as seen from one side. */
function times(frames: Frame[], from: number): Map<StepName, { out?: number; in?: number }> {
  const names = nameRequests(frames);
  const out = new Map<StepName, { out?: number; in?: number }>();
  for (const f of frames) {
    const name = f.msg?.id === undefined || f.msg.id === null ? undefined : names.get(f.msg.id);
    if (!name) continue;
    const entry = out.get(name) ?? {};
    entry[f.dir] ??= f.t - from;
    out.set(name, entry);
  }
  return out;
}

/**
 * The steps of one measure. `page` is what the page saw, `server` the
 * server's connections: the measured one is the one that received the
 * page's `join` after the click.
 */
export function steps(page: Frame[], server: Frame[][], click: number): Map<StepName, Step> {
  const joinedAfterClick = (c: Frame[]) =>
    c.some((f) => f.dir === 'in' && f.msg?.method === 'join' && f.t >= click - 1);
  const conn = server.filter(joinedAfterClick).at(-1) ?? [];
  const pageSide = times(
    page.filter((f) => f.t >= click - 1),
    click,
  );
  const serverSide = times(conn, click);
  const result = new Map<StepName, Step>();
  for (const name of STEP_NAMES) {
    const p = pageSide.get(name);
    const s = serverSide.get(name);
    result.set(name, { sent: p?.out, received: s?.in, answered: s?.out, done: p?.in });
  }
  return result;
}
