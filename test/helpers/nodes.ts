import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import type { NodeLoad, NodeRegistryOptions } from '../../src/nodes/index.js';

export const IDLE: NodeLoad = { workers: 2, rooms: 0, peers: 0, consumers: 0, cpu: 0 };

/** Registry options for a test node `id`: fast heartbeats, dead after a second, idle unless `o` says otherwise. */
export const registryOptions = (id: string, o: Partial<NodeRegistryOptions> = {}): NodeRegistryOptions => ({
  id,
  region: 'eu',
  publicUrl: () => `http://${id}.test`,
  heartbeatSeconds: 0.2,
  deadAfterSeconds: 1,
  retrySeconds: 0.5,
  load: async () => IDLE,
  ...o,
});

/**
 * A node that only registers and heartbeats (registryNode.ts), as its own
 * process, on the PostgreSQL server `url`; resolves once it is registered.
 * Killed when the test ends; `kill('SIGKILL')` is how a test makes it die.
 */
export async function startRegistryNode(url: string, id: string): Promise<ChildProcess> {
  const script = path.join(import.meta.dirname, 'registryNode.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, url, id], { stdio: ['ignore', 'pipe', 'inherit'] });
  onTestFinished(() => void child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('registered') && resolve());
    child.once('exit', (code) => reject(new Error(`the node process exited (${code}) before registering`)));
  });
  return child;
}
