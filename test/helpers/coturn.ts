import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const TURNSERVER = process.env.TURNSERVER_PATH ?? 'turnserver';

export interface Coturn {
  port: number;
  url: string;
  /** Relay port range given to coturn (kept clear of the gateway's 40000-40999). */
  relayPorts: { min: number; max: number };
  /** The exact command line, for reports. */
  command: string[];
  logs: () => string;
  stop: () => Promise<void>;
}

/** Throws if `turnserver` is not installed: the TURN tests must fail, never skip. */
function assertInstalled(): void {
  const r = spawnSync(TURNSERVER, ['--version'], { encoding: 'utf8' });
  if (r.error)
    throw new Error(
      `coturn's turnserver is required for the TURN tests and could not be run (${TURNSERVER}): ${r.error.message}. Install it with: apt-get install coturn`,
    );
}

async function udpFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function tcpFree(port: number): Promise<boolean> {
  const srv = net.createServer();
  return new Promise((resolve) => {
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

function tcpConnects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts coturn on 127.0.0.1 with TURN REST (use-auth-secret) credentials, on a free
 * port in 34000-34999 and a relay range in 35000-39999. Resolves once coturn logs that
 * its UDP listener is open and its TCP listener accepts connections.
 */
export async function startCoturn({
  secret,
  realm = 'vigie.test',
}: {
  secret: string;
  realm?: string;
}): Promise<Coturn> {
  assertInstalled();
  const failures: string[] = [];
  for (let attempt = 0; attempt < 8; attempt++) {
    const port = 34000 + Math.floor(Math.random() * 1000);
    if (!(await udpFree(port)) || !(await tcpFree(port))) {
      failures.push(`port ${port} busy`);
      continue;
    }
    const min = 35000 + Math.floor(Math.random() * 24) * 200;
    const max = min + 199;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vigie-coturn-'));
    const args = [
      '-n',
      '-v',
      '--listening-ip=127.0.0.1',
      '--relay-ip=127.0.0.1',
      `--listening-port=${port}`,
      `--min-port=${min}`,
      `--max-port=${max}`,
      '--use-auth-secret',
      `--static-auth-secret=${secret}`,
      `--realm=${realm}`,
      '--allow-loopback-peers',
      '--no-cli',
      '--no-tls',
      '--no-dtls',
      '--log-file=stdout',
      '--simple-log',
      `--pidfile=${path.join(dir, 'turnserver.pid')}`,
      `--userdb=${path.join(dir, 'turndb')}`,
    ];
    let logText = '';
    const child = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (c: Buffer) => (logText += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (logText += c.toString()));
    let spawnError: Error | undefined;
    child.once('error', (e) => (spawnError = e));

    const cleanup = async () => {
      await stopProcess(child);
      rmSync(dir, { recursive: true, force: true });
    };

    const deadline = Date.now() + 10_000;
    let ready = false;
    while (Date.now() < deadline) {
      if (spawnError) {
        await cleanup();
        throw new Error(`could not start ${TURNSERVER}: ${spawnError.message}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) break;
      if (/Address already in use/.test(logText)) break;
      if (logText.includes(`UDP listener opened on: 127.0.0.1:${port}`) && (await tcpConnects(port))) {
        ready = true;
        break;
      }
      await sleep(100);
    }
    if (ready) {
      return {
        port,
        url: `turn:127.0.0.1:${port}`,
        relayPorts: { min, max },
        command: [TURNSERVER, ...args],
        logs: () => logText,
        stop: cleanup,
      };
    }
    await cleanup();
    failures.push(
      `port ${port}: not ready (exit ${child.exitCode ?? child.signalCode ?? 'none'}); log tail:\n${logText.split('\n').slice(-15).join('\n')}`,
    );
  }
  throw new Error(`coturn did not start after 8 attempts:\n${failures.join('\n')}`);
}
