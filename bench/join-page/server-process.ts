/**
 * Each server of the join-page benchmark in a process of its own, the
 * benchmark's driver (Playwright) in a third: each server pays for its own
 * work and no more. The gateway's background work (its embedded ClickHouse,
 * stats sampling, fsyncs) does not stall the bare server, and neither shares
 * its event loop with the driver. Run as a child, a server answers `frames`
 * (its sockets' signaling frames, bench/join-page/steps.ts), `mint` (Vigie: a
 * token) and `close` over IPC.
 */
import { fork } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { Frame } from './steps.js';

export type ServerKind = 'bare' | 'vigie';

export interface ServerProcess {
  url: string;
  /** The frames of each connection of the server, as it saw them. */
  connections: () => Promise<Frame[][]>;
  /** The longest event-loop stall of the server's process since the last call, in ms. */
  loopDelayMaxMs: () => Promise<number>;
  /** Vigie: an access token for the benchmark's room. */
  mint: (o: { identity: string; name: string }) => Promise<string>;
  close: () => Promise<void>;
}

type Command = 'frames' | 'loop' | 'mint' | 'close';

export async function startServerProcess(kind: ServerKind): Promise<ServerProcess> {
  const child = fork(fileURLToPath(import.meta.url), ['--child', kind], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let next = 0;
  const waiting = new Map<number, (result: any) => void>();
  child.on('message', (m: { id: number; result: unknown }) => waiting.get(m.id)?.(m.result));
  const call = <T>(cmd: Command, arg?: unknown) =>
    new Promise<T>((resolve, reject) => {
      const id = next++;
      waiting.set(id, resolve);
      void exited.then((code) => reject(new Error(`the ${kind} server exited (${code})`)));
      if (id > 0) child.send({ id, cmd, arg });
    });
  const url = await call<string>('frames'); // id 0: the child's first message, its URL
  return {
    url,
    connections: () => call('frames'),
    loopDelayMaxMs: () => call('loop'),
    mint: (o) => call('mint', o),
    close: async () => {
      child.send({ id: -1, cmd: 'close' });
      await exited;
    },
  };
}

if (process.argv[2] === '--child') {
  const kind = process.argv[3] as ServerKind;
  const { tapServers } = await import('./steps.js');
  const tap = tapServers();
  let server: { url: string; close: () => Promise<void>; mint?: ServerProcess['mint'] };
  if (kind === 'bare') server = await (await import('./bare-server.js')).startBareServer();
  else {
    const gw = await (await import('../../test/helpers/gateway.js')).startGateway();
    const mint: ServerProcess['mint'] = (o) => gw.mint({ room: 'bench', grants: ['publish', 'subscribe'], ...o });
    server = { url: gw.url, close: gw.close, mint };
  }
  // The benchmark is gone (it crashed, or was stopped): so is its server.
  process.on('disconnect', () => process.exit(1));
  const port = Number(new URL(server.url).port);
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  process.on('message', async ({ id, cmd, arg }: { id: number; cmd: Command; arg?: any }) => {
    if (cmd === 'close') {
      await server.close();
      process.exit(0);
    }
    let result: unknown;
    if (cmd === 'frames') result = tap.connections(port);
    else if (cmd === 'mint') result = await server.mint!(arg);
    else {
      result = loop.max / 1e6;
      loop.reset();
    }
    process.send!({ id, result });
  });
  process.send!({ id: 0, result: server.url });
}
