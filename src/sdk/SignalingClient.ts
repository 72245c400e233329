/**
 * Client side of the signaling protocol (see src/signaling/protocol.ts). Runs
 * in browsers and, with the `ws` package, in Node (tests, bots).
 */

export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (ev: any) => void): void;
}

/** Where a `REDIRECT` answer sends a join: the node that serves the room, and its signaling URL. */
export interface Redirect {
  nodeId: string;
  url: string;
}

/**
 * Redirects the SDK follows for one join before it gives up with `REDIRECT_LOOP`: a room is served by one node,
 * so more hops mean the nodes disagree (or keep changing their minds).
 */
export const MAX_JOIN_REDIRECTS = 3;

export class SignalingError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly method: string,
    /** With code `REDIRECT`: where the request should go instead. */
    readonly redirect?: Redirect,
  ) {
    super(`${method}: ${code}: ${message}`);
    this.name = 'SignalingError';
  }
}

type Listener = (data: any) => void;

/** Close code of a connection the client gave up on because the server stopped answering; the SDK rejoins. */
export const HEARTBEAT_TIMEOUT_CODE = 4009;

export class SignalingClient {
  #nextId = 1;
  readonly #pending = new Map<
    number,
    { method: string; resolve: (v: any) => void; reject: (e: Error) => void; timer: ReturnType<typeof setTimeout> }
  >();
  readonly #listeners = new Map<string, Set<Listener>>();
  readonly opened: Promise<void>;
  closeInfo?: { code: number; reason: string };
  /** Notifications received while held, replayed in order on release. */
  #held?: Array<[string, unknown]>;
  #keepAlive?: ReturnType<typeof setInterval>;

  constructor(
    readonly socket: WebSocketLike,
    private readonly timeoutMs = 15_000,
  ) {
    this.opened = new Promise((resolve, reject) => {
      if (socket.readyState === 1) resolve();
      // A server that vanished (a node whose machine is gone) may never refuse the handshake: give up on it.
      const timer = setTimeout(() => {
        reject(new SignalingError('DISCONNECTED', `no connection in ${timeoutMs} ms`, 'connect'));
        if (socket.readyState !== 1) socket.close();
      }, timeoutMs);
      socket.addEventListener('open', () => {
        clearTimeout(timer);
        resolve();
      });
      const failed = () => {
        clearTimeout(timer);
        reject(new SignalingError('DISCONNECTED', 'signaling connection failed', 'connect'));
      };
      socket.addEventListener('error', failed);
      socket.addEventListener('close', failed);
    });
    // Rejections are handled by whoever sends a request; a client that never does must not leave one unhandled.
    this.opened.catch(() => undefined);
    socket.addEventListener('message', (ev: { data: unknown }) => this.#onMessage(String(ev.data)));
    socket.addEventListener('close', (ev: { code: number; reason: string }) =>
      this.#closed(ev.code, String(ev.reason ?? '')),
    );
  }

  /**
   * The client's half of the heartbeat: a `ping` request every third of
   * `timeoutMs`, each allowed two thirds of it. A server that does not answer
   * is taken as gone (code 4009, "heartbeat timeout") without waiting for TCP
   * to notice, which on a half-open connection can take many minutes.
   */
  keepAlive(timeoutMs: number): void {
    clearInterval(this.#keepAlive);
    this.#keepAlive = setInterval(() => {
      if (this.closeInfo) return clearInterval(this.#keepAlive);
      this.request('ping', {}, (timeoutMs * 2) / 3).catch((err: SignalingError) => {
        if (err.code !== 'TIMEOUT' || this.closeInfo) return;
        this.#closed(HEARTBEAT_TIMEOUT_CODE, 'heartbeat timeout');
        this.socket.close(HEARTBEAT_TIMEOUT_CODE, 'heartbeat timeout');
      });
    }, timeoutMs / 3);
  }

  /**
   * Ends every pending request and tells the listeners, once, whichever of the socket or the heartbeat saw it first.
   */
  #closed(code: number, reason: string): void {
    if (this.closeInfo) return;
    clearInterval(this.#keepAlive);
    this.closeInfo = { code, reason };
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new SignalingError('DISCONNECTED', `connection closed (${code})`, p.method));
    }
    this.#pending.clear();
    this.#emit('close', this.closeInfo);
  }

  /** Sends a request and resolves with its `data`, or rejects with a SignalingError carrying the server's code. */
  async request<T = any>(method: string, data: Record<string, unknown> = {}, timeoutMs = this.timeoutMs): Promise<T> {
    await this.opened;
    const id = this.#nextId++;
    const answer = this.answerTo<T>(id, method, timeoutMs);
    this.socket.send(JSON.stringify({ id, method, data }));
    return answer;
  }

  /**
   * The answer to request `id`, sent on this socket by someone else before this
   * client existed: the call page's inline script sends `join` as id 0 while the
   * SDK loads (src/web/earlyJoin.ts). Ids this client sends start at 1.
   */
  answerTo<T = any>(id: number, method: string, timeoutMs = this.timeoutMs): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new SignalingError('TIMEOUT', `no answer in ${timeoutMs} ms`, method));
      }, timeoutMs);
      this.#pending.set(id, { method, resolve, reject, timer });
    });
  }

  /** Handles messages the socket received before this client listened to it, in their order. */
  replay(messages: string[]): void {
    for (const text of messages) this.#onMessage(text);
  }

  /** Subscribes to a notification (or to `close`, or to `error` for unsolicited error frames). */
  on(method: string, listener: Listener): () => void {
    let set = this.#listeners.get(method);
    if (!set) {
      set = new Set();
      this.#listeners.set(method, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Queues notifications instead of delivering them, until `releaseNotifications`.
   * A client that still has async setup to do after `join` (loading the device)
   * holds them so none is lost before its handlers exist.
   */
  holdNotifications(): void {
    this.#held ??= [];
  }

  releaseNotifications(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const [method, data] of held) this.#emit(method, data);
  }

  close(): void {
    clearInterval(this.#keepAlive);
    this.socket.close(1000, 'bye');
  }

  #emit(method: string, data: unknown): void {
    for (const l of this.#listeners.get(method) ?? []) l(data);
  }

  #onMessage(text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg?.notification) {
      if (this.#held) this.#held.push([msg.method, msg.data]);
      else this.#emit(msg.method, msg.data);
      return;
    }
    const pending = typeof msg?.id === 'number' ? this.#pending.get(msg.id) : undefined;
    if (!pending) {
      if (msg?.ok === false) this.#emit('error', msg.error);
      return;
    }
    this.#pending.delete(msg.id);
    clearTimeout(pending.timer);
    if (msg.ok) pending.resolve(msg.data);
    else
      pending.reject(
        new SignalingError(
          msg.error?.code ?? 'INTERNAL',
          msg.error?.message ?? 'error',
          pending.method,
          msg.error?.redirect,
        ),
      );
  }
}
