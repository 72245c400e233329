import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './browser.js';

export interface CompiledGateway {
  /** Everything written to stdout and stderr so far (a pseudo-terminal merges both). */
  output: () => string;
  /** The public URL and the demo tenant's API key, from the start banner. */
  base: string;
  demoKey: string;
  stop: () => Promise<number | null>;
}

/**
 * What `npm start` runs after its setup (dist/server/main.js, which scripts/setup.sh compiles), on an empty data
 * directory. `tty`: under `script` (util-linux), so that its stdout is a pseudo-terminal as in an operator's shell.
 */
export async function startCompiledGateway(
  opts: { env?: Record<string, string>; tty?: boolean } = {},
): Promise<CompiledGateway> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'vigie-compiled-'));
  const command = [process.execPath, '--enable-source-maps', 'dist/server/main.js'];
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    XDG_CACHE_HOME: process.env.XDG_CACHE_HOME,
    VIGIE_PORT: '0',
    VIGIE_DATA_DIR: dataDir,
    ...opts.env,
  };
  // detached: its own process group, so that stop() reaches the gateway under `script` too.
  const child = opts.tty
    ? spawn('script', ['-qfec', command.join(' '), '/dev/null'], {
        env,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      })
    : spawn(command[0]!, command.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = once(child, 'exit');
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGTERM');
    const [code] = await exited;
    rmSync(dataDir, { recursive: true, force: true });
    return code as number | null;
  };
  try {
    const banner = await waitFor(
      'the start banner',
      async () => text,
      (o) => /Vigie is running at/.test(o) || child.exitCode !== null,
      90_000,
    );
    const base = /Vigie is running at (\S+)/.exec(banner)?.[1];
    const demoKey = /Demo API key for tenant "demo" .*: (\S+)/.exec(banner)?.[1];
    if (!base || !demoKey) throw new Error(`the gateway did not start: ${banner}`);
    return { output: () => text, base, demoKey, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The compiled gateway (dist/server/main.js) on `dataDir`, without waiting for anything; its output is collected. */
export function spawnCompiled(dataDir: string, extraEnv: Record<string, string> = {}) {
  const gateway = spawn(process.execPath, ['--enable-source-maps', 'dist/server/main.js'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      XDG_CACHE_HOME: process.env.XDG_CACHE_HOME,
      VIGIE_PORT: '0',
      VIGIE_DATA_DIR: dataDir,
      VIGIE_LOG_LEVEL: 'warn',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { text: '' };
  gateway.stdout!.on('data', (d) => (output.text += d));
  gateway.stderr!.on('data', (d) => (output.text += d));
  return { gateway, output };
}
