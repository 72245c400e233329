/**
 * The baseline server of the join-page benchmark in a process of its own, so
 * that each server pays for its own work: the gateway's background work (its
 * embedded ClickHouse, stats sampling, fsyncs) does not stall the bare server,
 * nor the other way round. Run as a child: it answers `frames` (its sockets'
 * signaling frames, bench/join-page/steps.ts) and `close` over IPC.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Frame } from './steps.js';

export interface BareProcess {
  url: string;
  /** The frames of each connection of the bare server, as it saw them. */
  connections: () => Promise<Frame[][]>;
  close: () => Promise<void>;
}

type Reply = { url: string } | { connections: Frame[][] };

export async function startBareProcess(): Promise<BareProcess> {
  const child = fork(fileURLToPath(import.meta.url), ['--child'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const next = () =>
    new Promise<Reply>((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the bare server exited (${code})`));
      child.once('exit', onExit);
      child.once('message', (m) => {
        child.off('exit', onExit);
        resolve(m as Reply);
      });
    });
  const { url } = (await next()) as { url: string };
  return {
    url,
    connections: async () => {
      const reply = next();
      child.send('frames');
      return ((await reply) as { connections: Frame[][] }).connections;
    },
    close: async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.send('close');
      await exited;
    },
  };
}

if (process.argv.includes('--child')) {
  const { startBareServer } = await import('./bare-server.js');
  const { tapServers } = await import('./steps.js');
  const tap = tapServers();
  const bare = await startBareServer();
  const port = Number(new URL(bare.url).port);
  process.on('message', async (m) => {
    if (m === 'frames') process.send!({ connections: tap.connections(port) });
    if (m === 'close') {
      await bare.close();
      process.exit(0);
    }
  });
  process.send!({ url: bare.url });
}
